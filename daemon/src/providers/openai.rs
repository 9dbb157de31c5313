//! OpenAI-compatible HTTP providers: `/embeddings` ([`OpenAiEmbedder`]) and
//! `/chat/completions` ([`OpenAiChat`]), for OpenAI, Azure OpenAI, Ollama, vLLM and LiteLLM
//! proxies.
//!
//! Every request goes through one [`HttpCore`] per provider: a semaphore bounds the requests in
//! flight (held for a whole call, retries included, so a rate-limited server sees the pressure
//! drop), each attempt has a total timeout, and failures are classified:
//! - 429 → retried after `Retry-After` / `retry-after-ms` (seconds or an HTTP date) when the
//!   server sends one, else after exponential backoff with jitter; a wait longer than
//!   [`HttpOptions::max_retry_after`] is not waited inline but returned as
//!   [`ProviderError::RateLimited`];
//! - 408, 409, 5xx, connection errors, timeouts, broken bodies → retried with backoff;
//! - other 4xx → [`ProviderError::Permanent`] at once;
//! - a 2xx whose body is not what the API defines → [`ProviderError::Invalid`].
//!
//! After [`HttpOptions::max_attempts`] attempts the last error is returned (`RateLimited` or
//! `Transient`). Errors name the endpoint (`POST <url>`); the key is sent in a header only,
//! never logged, and scrubbed from any server message quoted in an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::config::{ApiKey, Flavour, redact_url};
use super::{ChatMessage, Embedder, Llm, ProviderError};

/// Where and how to reach an OpenAI-compatible API.
#[derive(Debug, Clone)]
pub struct HttpEndpoint {
    pub flavour: Flavour,
    /// OpenAI style: the base including the version path (`https://api.openai.com/v1`); Azure:
    /// the resource endpoint (`https://<resource>.openai.azure.com`). No trailing slash.
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    /// Azure's `api-version` query value.
    pub api_version: Option<String>,
}

/// Timeouts, retries and concurrency of one provider.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Total time of one attempt (connect, send, whole answer).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per call, the first included (≥ 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled each time, up to `backoff_max`, with jitter
    /// (a random wait between half and all of it).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The longest `Retry-After` waited inline; longer ones end the call with `RateLimited`.
    pub max_retry_after: Duration,
    /// Requests in flight at once.
    pub max_concurrency: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_attempts: 5,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            max_concurrency: 4,
        }
    }
}

/// The request machinery shared by the embedder and the chat model.
#[derive(Debug)]
pub(crate) struct HttpCore {
    client: reqwest::Client,
    endpoint: HttpEndpoint,
    options: HttpOptions,
    permits: Semaphore,
}

/// The outcome of one failed attempt.
struct Failure {
    error: ProviderError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl HttpCore {
    pub(crate) fn new(endpoint: HttpEndpoint, options: HttpOptions) -> Result<Self, ProviderError> {
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("hrag/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        let permits = Semaphore::new(options.max_concurrency.max(1));
        Ok(HttpCore {
            client,
            endpoint,
            options,
            permits,
        })
    }

    /// The URL of an operation (`embeddings`, `chat/completions`) for a model or deployment.
    pub(crate) fn url(&self, model: &str, operation: &str) -> String {
        let base = &self.endpoint.base_url;
        match self.endpoint.flavour {
            Flavour::Azure => {
                let mut u = format!(
                    "{base}/openai/deployments/{}/{operation}",
                    encode_path_segment(model)
                );
                if let Some(v) = &self.endpoint.api_version {
                    u.push_str("?api-version=");
                    u.push_str(&encode_path_segment(v));
                }
                u
            }
            _ => format!("{base}/{operation}"),
        }
    }

    fn is_azure(&self) -> bool {
        self.endpoint.flavour.is_azure()
    }

    /// POSTs `body` as JSON and returns the JSON answer, with the retry policy of the module.
    pub(crate) async fn post_json(&self, url: &str, body: &Value) -> Result<Value, ProviderError> {
        let endpoint = format!("POST {}", redact_url(url));
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ProviderError::Invalid(format!("{endpoint}: provider closed")))?;
        let attempts = self.options.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(url, body, &endpoint).await {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            if !failure.retryable || attempt >= attempts {
                return Err(failure.error);
            }
            let wait = match failure.retry_after {
                Some(d) if d > self.options.max_retry_after => {
                    tracing::warn!(
                        %endpoint,
                        retry_after_secs = d.as_secs_f64(),
                        "server asks for a longer wait than hrag waits inline; giving up for now"
                    );
                    return Err(failure.error);
                }
                Some(d) => d,
                None => self.backoff(attempt),
            };
            tracing::warn!(
                %endpoint,
                attempt,
                max_attempts = attempts,
                wait_ms = wait.as_millis() as u64,
                error = %failure.error,
                "provider request failed; retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, url: &str, body: &Value, endpoint: &str) -> Result<Value, Failure> {
        let mut req = self
            .client
            .post(url)
            .timeout(self.options.timeout)
            .json(body);
        if let Some(key) = &self.endpoint.api_key {
            req = if self.is_azure() {
                req.header("api-key", key.expose())
            } else {
                req.bearer_auth(key.expose())
            };
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(self.transport_failure(url, endpoint, &e)),
        };
        let status = resp.status();
        let retry_after = retry_after(resp.headers(), SystemTime::now());
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Err(self.transport_failure(url, endpoint, &e)),
        };
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Failure {
                error: ProviderError::Invalid(format!(
                    "{endpoint}: the answer is not JSON ({e}): {}",
                    self.excerpt(&bytes)
                )),
                retryable: false,
                retry_after: None,
            });
        }
        let code = status.as_u16();
        let message = format!("HTTP {status}: {}", self.server_message(&bytes));
        let endpoint = endpoint.to_owned();
        Err(match code {
            429 => Failure {
                error: ProviderError::RateLimited {
                    endpoint,
                    retry_after,
                    message,
                },
                retryable: true,
                retry_after,
            },
            408 | 409 | 500..=599 => Failure {
                error: ProviderError::Transient { endpoint, message },
                retryable: true,
                retry_after: if code == 503 { retry_after } else { None },
            },
            _ => Failure {
                error: ProviderError::Permanent {
                    endpoint,
                    status: Some(code),
                    message,
                },
                retryable: false,
                retry_after: None,
            },
        })
    }

    fn transport_failure(&self, url: &str, endpoint: &str, e: &reqwest::Error) -> Failure {
        let what = if e.is_timeout() {
            format!("timed out after {:.1}s", self.options.timeout.as_secs_f64())
        } else if e.is_connect() {
            "cannot connect".to_owned()
        } else {
            "connection failed".to_owned()
        };
        let mut detail = self.scrub(&error_chain(e));
        if let Ok(u) = url::Url::parse(url)
            && let Some(p) = u.password()
        {
            detail = detail.replace(&format!(":{p}@"), ":***@");
        }
        Failure {
            error: ProviderError::Transient {
                endpoint: endpoint.to_owned(),
                message: format!("{what}: {detail}"),
            },
            retryable: true,
            retry_after: None,
        }
    }

    /// Backoff before attempt `attempt + 1`: `initial · 2^(attempt-1)`, capped, then a random
    /// point in its upper half.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self
            .options
            .backoff_initial
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.options.backoff_max);
        let half = base / 2;
        half + half.mul_f64(jitter())
    }

    /// The error text of a JSON error body (`error.message`), else the start of the body.
    fn server_message(&self, bytes: &[u8]) -> String {
        let from_json = serde_json::from_slice::<Value>(bytes).ok().and_then(|v| {
            let e = v.get("error")?;
            match e {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_owned),
                _ => None,
            }
        });
        match from_json {
            Some(m) => self.scrub(&truncate_chars(&m, 300)),
            None => self.excerpt(bytes),
        }
    }

    fn excerpt(&self, bytes: &[u8]) -> String {
        let text = String::from_utf8_lossy(bytes);
        let t = text.trim();
        if t.is_empty() {
            "(empty body)".to_owned()
        } else {
            self.scrub(&truncate_chars(t, 300))
        }
    }

    /// Removes the key from text a server or library produced.
    fn scrub(&self, text: &str) -> String {
        match &self.endpoint.api_key {
            Some(k) if k.expose().len() >= 4 => text.replace(k.expose(), "[redacted]"),
            _ => text.to_owned(),
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A number in [0, 1) for backoff jitter (not for anything that needs unpredictability).
fn jitter() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = STATE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(nanos);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The wait a response asks for: `retry-after-ms` (OpenAI, Azure), else `Retry-After` in
/// seconds or as an HTTP date (relative to `now`).
pub(crate) fn retry_after(
    headers: &reqwest::header::HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    parse_retry_after(value, now)
}

/// `Retry-After`: delta-seconds (decimals tolerated) or an IMF-fixdate.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the HTTP date format.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let rest = s.split_once(", ")?.1;
    let mut parts = rest.split_ascii_whitespace();
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let h: u64 = hms.next()?.parse().ok()?;
    let m: u64 = hms.next()?.parse().ok()?;
    let sec: u64 = hms.next()?.parse().ok()?;
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days.checked_mul(86_400)? + (h * 3600 + m * 60 + sec) as i64;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Embeddings over `/embeddings`, in batches sent concurrently (bounded by the semaphore).
#[derive(Debug)]
pub struct OpenAiEmbedder {
    core: Arc<HttpCore>,
    name: String,
    api_model: String,
    dim: usize,
    send_dimensions: bool,
    batch_size: usize,
}

impl OpenAiEmbedder {
    /// `name` is the model as configured (reported by `model_name`), `api_model` what the API
    /// is sent (Azure: the deployment), `dim` the dimension every answer must have;
    /// `send_dimensions` asks the server for `dim` (OpenAI `text-embedding-3-*`).
    pub fn new(
        endpoint: HttpEndpoint,
        name: String,
        api_model: String,
        dim: usize,
        send_dimensions: bool,
        batch_size: usize,
        options: HttpOptions,
    ) -> Result<Self, ProviderError> {
        if dim == 0 {
            return Err(ProviderError::Invalid(format!(
                "embedding model '{name}': dimension 0"
            )));
        }
        Ok(OpenAiEmbedder {
            core: Arc::new(HttpCore::new(endpoint, options)?),
            name,
            api_model,
            dim,
            send_dimensions,
            batch_size: batch_size.max(1),
        })
    }

    async fn embed_batch(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, ProviderError> {
        let url = self.core.url(&self.api_model, "embeddings");
        let mut body = json!({ "input": batch });
        if !self.core.is_azure() {
            body["model"] = json!(self.api_model);
        }
        if self.send_dimensions {
            body["dimensions"] = json!(self.dim);
        }
        let answer = self.core.post_json(&url, &body).await?;
        let endpoint = format!("POST {}", redact_url(&url));
        let bad = |what: String| ProviderError::Invalid(format!("{endpoint}: {what}"));
        let data = answer
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("the answer has no `data` list".to_owned()))?;
        if data.len() != batch.len() {
            return Err(bad(format!(
                "{} embeddings returned for {} inputs",
                data.len(),
                batch.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; batch.len()];
        for (pos, item) in data.iter().enumerate() {
            let index = match item.get("index") {
                None => pos,
                Some(i) => i
                    .as_u64()
                    .map(|i| i as usize)
                    .filter(|i| *i < batch.len())
                    .ok_or_else(|| bad(format!("embedding {pos} has an invalid index")))?,
            };
            let values = item
                .get("embedding")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("embedding {index} is not a list of numbers")))?;
            if values.len() != self.dim {
                return Err(bad(format!(
                    "model '{}' returned {}-dimensional vectors, but this database is \
                     configured for {} (model_config.embedding_dim)",
                    self.name,
                    values.len(),
                    self.dim
                )));
            }
            let mut v = Vec::with_capacity(self.dim);
            for x in values {
                let f = x
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| bad(format!("embedding {index} holds a non-number")))?;
                v.push(f as f32);
            }
            if out[index].replace(v).is_some() {
                return Err(bad(format!("embedding index {index} appears twice")));
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, v)| v.ok_or_else(|| bad(format!("embedding {i} is missing"))))
            .collect()
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ProviderError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batches = texts.chunks(self.batch_size).map(|b| self.embed_batch(b));
        let results = futures::future::try_join_all(batches).await?;
        Ok(results.into_iter().flatten().collect())
    }
}

/// A chat model over `/chat/completions`.
#[derive(Debug)]
pub struct OpenAiChat {
    core: Arc<HttpCore>,
    name: String,
    api_model: String,
}

impl OpenAiChat {
    /// `name` is the model as configured, `api_model` what the API is sent (Azure: the
    /// deployment).
    pub fn new(
        endpoint: HttpEndpoint,
        name: String,
        api_model: String,
        options: HttpOptions,
    ) -> Result<Self, ProviderError> {
        Ok(OpenAiChat {
            core: Arc::new(HttpCore::new(endpoint, options)?),
            name,
            api_model,
        })
    }
}

#[async_trait]
impl Llm for OpenAiChat {
    fn model_name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, system: &str, user: &str) -> Result<String, ProviderError> {
        self.complete_with_history(system, &[], user).await
    }

    async fn complete_with_history(
        &self,
        system: &str,
        history: &[ChatMessage],
        user: &str,
    ) -> Result<String, ProviderError> {
        let mut messages = Vec::with_capacity(history.len() + 2);
        if !system.is_empty() {
            messages.push(json!({ "role": "system", "content": system }));
        }
        for m in history {
            messages.push(json!({ "role": m.role.as_str(), "content": m.content }));
        }
        messages.push(json!({ "role": "user", "content": user }));
        let mut body = json!({ "messages": messages });
        if !self.core.is_azure() {
            body["model"] = json!(self.api_model);
        }
        let url = self.core.url(&self.api_model, "chat/completions");
        let answer = self.core.post_json(&url, &body).await?;
        let endpoint = format!("POST {}", redact_url(&url));
        let choice = answer
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .ok_or_else(|| {
                ProviderError::Invalid(format!("{endpoint}: the answer has no choices"))
            })?;
        if choice.get("finish_reason").and_then(Value::as_str) == Some("length") {
            tracing::warn!(
                %endpoint,
                model = %self.name,
                "the model stopped at its output token limit; the answer is truncated"
            );
        }
        match choice.pointer("/message/content") {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(ProviderError::Invalid(format!(
                "{endpoint}: the first choice has no text content (finish_reason {})",
                choice
                    .get("finish_reason")
                    .map(Value::to_string)
                    .unwrap_or_else(|| "null".to_owned())
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant;

    use super::super::testserver::{Reply, TestServer};
    use super::*;

    fn endpoint(base: &str, key: Option<&str>) -> HttpEndpoint {
        HttpEndpoint {
            flavour: Flavour::OpenAi,
            base_url: base.to_owned(),
            api_key: key.map(ApiKey::new),
            api_version: None,
        }
    }

    fn fast_options() -> HttpOptions {
        HttpOptions {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_attempts: 4,
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
            max_concurrency: 4,
        }
    }

    fn embedder(base: &str, dim: usize, batch: usize, opts: HttpOptions) -> OpenAiEmbedder {
        OpenAiEmbedder::new(
            endpoint(base, Some("sk-test-secret")),
            "openai/test-embed".into(),
            "test-embed".into(),
            dim,
            false,
            batch,
            opts,
        )
        .unwrap()
    }

    /// Answers an embeddings request with vectors `[i, len(text), 0…]` in reverse index order.
    fn embeddings_reply(body: &Value, dim: usize) -> Reply {
        let inputs = body["input"].as_array().cloned().unwrap_or_default();
        let mut data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = vec![0.0f64; dim];
                v[0] = t.as_str().map(|s| s.len() as f64).unwrap_or(0.0);
                v[1] = i as f64;
                json!({ "object": "embedding", "index": i, "embedding": v })
            })
            .collect();
        data.reverse();
        Reply::json(200, json!({ "object": "list", "data": data }))
    }

    fn texts(n: usize) -> Vec<String> {
        (0..n).map(|i| "x".repeat(i + 1)).collect()
    }

    #[tokio::test]
    async fn embeddings_are_batched_and_ordered() {
        let server = TestServer::start(|req, _n| embeddings_reply(&req.json(), 8)).await;
        let e = embedder(&server.base_url(), 8, 10, fast_options());
        let out = e.embed(&texts(25)).await.unwrap();
        assert_eq!(out.len(), 25);
        for (i, v) in out.iter().enumerate() {
            assert_eq!(v.len(), 8);
            assert_eq!(v[0], (i + 1) as f32, "vector {i} belongs to text {i}");
        }
        let reqs = server.requests();
        assert_eq!(reqs.len(), 3, "25 texts in batches of 10");
        let mut sizes: Vec<usize> = reqs
            .iter()
            .map(|r| r.json()["input"].as_array().unwrap().len())
            .collect();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![5, 10, 10]);
        for r in &reqs {
            assert_eq!(r.path, "/v1/embeddings");
            assert_eq!(r.method, "POST");
            assert_eq!(r.header("authorization"), Some("Bearer sk-test-secret"));
            assert_eq!(r.json()["model"], "test-embed");
            assert!(r.json().get("dimensions").is_none());
        }
        assert!(e.embed(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn dimension_mismatch_is_invalid() {
        let server = TestServer::start(|req, _n| embeddings_reply(&req.json(), 4)).await;
        let e = embedder(&server.base_url(), 8, 10, fast_options());
        let err = e.embed(&texts(2)).await.unwrap_err();
        assert!(matches!(err, ProviderError::Invalid(_)), "{err}");
        assert!(!err.is_retryable());
        let msg = err.to_string();
        assert!(msg.contains("4-dimensional") && msg.contains("8"), "{msg}");
        assert!(msg.contains("/v1/embeddings"), "{msg}");
    }

    #[tokio::test]
    async fn rate_limit_honours_retry_after() {
        let server = TestServer::start(|req, n| {
            if n == 0 {
                Reply::json(429, json!({"error": {"message": "slow down"}}))
                    .header("Retry-After", "1")
            } else {
                embeddings_reply(&req.json(), 8)
            }
        })
        .await;
        let e = embedder(&server.base_url(), 8, 10, fast_options());
        let started = Instant::now();
        let out = e.embed(&texts(3)).await.unwrap();
        let waited = started.elapsed();
        assert_eq!(out.len(), 3);
        assert_eq!(server.requests().len(), 2);
        assert!(
            waited >= Duration::from_millis(950),
            "waited {waited:?}, Retry-After asked 1 s"
        );
        assert!(waited < Duration::from_secs(3), "waited {waited:?}");
    }

    #[tokio::test]
    async fn server_error_is_retried() {
        let server = TestServer::start(|req, n| {
            if n == 0 {
                Reply::text(500, "internal error")
            } else {
                embeddings_reply(&req.json(), 8)
            }
        })
        .await;
        let e = embedder(&server.base_url(), 8, 10, fast_options());
        assert_eq!(e.embed(&texts(2)).await.unwrap().len(), 2);
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn persistent_server_error_gives_up_after_max_attempts() {
        let server = TestServer::start(|_req, _n| Reply::text(503, "down")).await;
        let e = embedder(&server.base_url(), 8, 10, fast_options());
        let err = e.embed(&texts(1)).await.unwrap_err();
        assert!(matches!(err, ProviderError::Transient { .. }), "{err}");
        assert!(err.is_retryable());
        assert_eq!(server.requests().len(), 4);
        assert!(err.to_string().contains("503"), "{err}");
    }

    #[tokio::test]
    async fn timeout_then_success() {
        let server = TestServer::start(|req, n| {
            let reply = embeddings_reply(&req.json(), 8);
            if n == 0 {
                reply.delay(Duration::from_millis(1500))
            } else {
                reply
            }
        })
        .await;
        let opts = HttpOptions {
            timeout: Duration::from_millis(300),
            ..fast_options()
        };
        let e = embedder(&server.base_url(), 8, 10, opts);
        let started = Instant::now();
        assert_eq!(e.embed(&texts(2)).await.unwrap().len(), 2);
        assert!(started.elapsed() < Duration::from_millis(1400));
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn timeout_without_retries_fails_as_transient() {
        let server = TestServer::start(|req, _n| {
            embeddings_reply(&req.json(), 8).delay(Duration::from_millis(1500))
        })
        .await;
        let opts = HttpOptions {
            timeout: Duration::from_millis(200),
            max_attempts: 1,
            ..fast_options()
        };
        let e = embedder(&server.base_url(), 8, 10, opts);
        let err = e.embed(&texts(1)).await.unwrap_err();
        assert!(matches!(err, ProviderError::Transient { .. }), "{err}");
        assert!(err.to_string().contains("timed out"), "{err}");
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn client_errors_are_permanent_and_not_retried() {
        for status in [400u16, 401] {
            let server = TestServer::start(move |_req, _n| {
                Reply::json(
                    status,
                    json!({"error": {"message": "Incorrect API key provided: sk-test-secret"}}),
                )
            })
            .await;
            let e = embedder(&server.base_url(), 8, 10, fast_options());
            let err = e.embed(&texts(1)).await.unwrap_err();
            match &err {
                ProviderError::Permanent { status: s, .. } => assert_eq!(*s, Some(status)),
                other => panic!("expected Permanent, got {other:?}"),
            }
            assert!(!err.is_retryable());
            assert_eq!(server.requests().len(), 1, "HTTP {status} is not retried");
            let msg = err.to_string();
            assert!(msg.contains("/v1/embeddings"), "{msg}");
            assert!(!msg.contains("sk-test-secret"), "key leaked: {msg}");
        }
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let opts = HttpOptions {
            max_attempts: 2,
            ..fast_options()
        };
        let e = embedder(&format!("http://{addr}/v1"), 8, 10, opts);
        let err = e.embed(&texts(1)).await.unwrap_err();
        assert!(matches!(err, ProviderError::Transient { .. }), "{err}");
    }

    #[tokio::test]
    async fn long_retry_after_is_returned_not_waited() {
        let server = TestServer::start(|_req, _n| {
            Reply::json(429, json!({"error": "quota"})).header("Retry-After", "3600")
        })
        .await;
        let e = embedder(&server.base_url(), 8, 10, fast_options());
        let started = Instant::now();
        let err = e.embed(&texts(1)).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
        assert!(err.is_retryable());
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn chat_completion_and_azure_shape() {
        let server = TestServer::start(|_req, _n| {
            Reply::json(
                200,
                json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]}),
            )
        })
        .await;
        let chat = OpenAiChat::new(
            endpoint(&server.base_url(), Some("sk-x")),
            "openai/gpt-test".into(),
            "gpt-test".into(),
            fast_options(),
        )
        .unwrap();
        assert_eq!(chat.complete("be brief", "hi").await.unwrap(), "hello");
        let req = &server.requests()[0];
        assert_eq!(req.path, "/v1/chat/completions");
        let body = req.json();
        assert_eq!(body["model"], "gpt-test");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "hi");

        let azure = OpenAiChat::new(
            HttpEndpoint {
                flavour: Flavour::Azure,
                base_url: server.origin(),
                api_key: Some(ApiKey::new("az-key")),
                api_version: Some("2024-02-01".into()),
            },
            "azure/my-deploy".into(),
            "my-deploy".into(),
            fast_options(),
        )
        .unwrap();
        assert_eq!(azure.complete("", "hi").await.unwrap(), "hello");
        let req = &server.requests()[1];
        assert_eq!(
            req.path,
            "/openai/deployments/my-deploy/chat/completions?api-version=2024-02-01"
        );
        assert_eq!(req.header("api-key"), Some("az-key"));
        assert_eq!(req.header("authorization"), None);
        assert!(req.json().get("model").is_none());
        assert_eq!(req.json()["messages"][0]["role"], "user");
    }

    #[test]
    fn retry_after_formats() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after-ms", "250".parse().unwrap());
        h.insert("retry-after", "9".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let core = HttpCore::new(
            endpoint("http://127.0.0.1:1/v1", None),
            HttpOptions {
                backoff_initial: Duration::from_millis(100),
                backoff_max: Duration::from_millis(1000),
                ..HttpOptions::default()
            },
        )
        .unwrap();
        for _ in 0..50 {
            let b1 = core.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
            let b3 = core.backoff(3);
            assert!(b3 >= Duration::from_millis(200) && b3 <= Duration::from_millis(400));
            let b10 = core.backoff(10);
            assert!(b10 >= Duration::from_millis(500) && b10 <= Duration::from_millis(1000));
        }
    }
}
