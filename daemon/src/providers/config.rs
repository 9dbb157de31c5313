//! Provider configuration: what a registry entry and the environment say, resolved into a plan
//! of which provider to build with which endpoint. Pure (the environment is passed in), so the
//! rules documented in the parent module are tested without touching the process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::ProviderError;
use super::builtin::{DEFAULT_HASH_DIM, HASH_EMBEDDER_MODEL, RULE_EXTRACTOR_NAME};
use super::openai::{HttpEndpoint, HttpOptions};
use crate::registry::DbEntry;

/// The provider settings of one database: the entry's `model` and the keys of its
/// `model_config` (HybridRAG's `llm_model`, `embedding_model`, `embedding_dim`, `api_keys`, and
/// hrag's optional keys). Deserialises from a `model_config` mapping.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProviderSettings {
    /// The entry's `model` (HybridRAG: the LLM, e.g. `azure/gpt-4o`).
    #[serde(skip)]
    pub model: Option<String>,
    pub llm_model: Option<String>,
    pub embedding_model: Option<String>,
    pub embedding_dim: Option<i64>,
    /// Provider or role → key; values may hold `${ENV}` references.
    pub api_keys: BTreeMap<String, String>,
    pub api_base: Option<String>,
    pub embedding_api_base: Option<String>,
    pub api_version: Option<String>,
    pub llm_timeout_secs: Option<f64>,
    pub embedding_timeout_secs: Option<f64>,
    pub llm_max_async: Option<usize>,
    pub embedding_max_async: Option<usize>,
    pub embedding_batch_num: Option<usize>,
    pub max_attempts: Option<u32>,
    pub max_gleaning: Option<u32>,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("model", &self.model)
            .field("llm_model", &self.llm_model)
            .field("embedding_model", &self.embedding_model)
            .field("embedding_dim", &self.embedding_dim)
            .field("api_keys", &self.api_keys.keys().collect::<Vec<_>>())
            .field("api_base", &self.api_base.as_deref().map(redact_url))
            .field(
                "embedding_api_base",
                &self.embedding_api_base.as_deref().map(redact_url),
            )
            .finish_non_exhaustive()
    }
}

impl ProviderSettings {
    /// The settings a registry entry carries: every key of its `model_config` (`api_keys`,
    /// `api_base`, timeouts…), with the typed view's `llm_model`, `embedding_model` and
    /// `embedding_dim` taking precedence (the supervisor fills `embedding_dim` from an adopted
    /// store). Keys of the wrong type are reported and ignored.
    pub fn from_entry(entry: &DbEntry) -> ProviderSettings {
        let mc = &entry.model_config;
        let mut settings = match &entry.model_config_raw {
            Some(raw) => serde_yaml_ng::from_value::<ProviderSettings>(raw.clone()).unwrap_or_else(|e| {
                tracing::warn!(event = "model_config_invalid", db = %entry.name, error = %e,
                               "model_config has keys of the wrong type; using the defaults for them");
                ProviderSettings::default()
            }),
            None => ProviderSettings::default(),
        };
        settings.model = entry.model.clone();
        settings.llm_model = mc.llm_model.clone();
        settings.embedding_model = mc.embedding_model.clone();
        settings.embedding_dim = mc.embedding_dim;
        settings
    }
}

/// An API key. Never displayed: `Debug` prints `[redacted]` and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The secret, for the request header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The API dialect and defaults of an HTTP model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// api.openai.com, or any server speaking its API at a configured base URL.
    OpenAi,
    /// Azure OpenAI: `api-key` header, `api-version` query, deployment in the path.
    Azure,
    /// Ollama's OpenAI-compatible API (`/v1`), no key.
    Ollama,
    /// A model name with a foreign prefix, sent as is to an explicitly configured
    /// OpenAI-compatible server (vLLM, LiteLLM proxy).
    Compatible,
}

impl Flavour {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::OpenAi => "openai",
            Flavour::Azure => "azure",
            Flavour::Ollama => "ollama",
            Flavour::Compatible => "openai-compatible",
        }
    }

    /// Whether requests use Azure's URL shape and header.
    pub fn is_azure(self) -> bool {
        self == Flavour::Azure
    }
}

/// A model string of the registry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    Builtin,
    Http {
        flavour: Flavour,
        /// The model as configured (`openai/gpt-4o-mini`).
        configured: String,
        /// What the API is sent: the model name, or Azure's deployment.
        api_model: String,
    },
}

impl ModelRef {
    /// Parses a model string (rules in the parent module's documentation).
    pub fn parse(model: Option<&str>) -> ModelRef {
        let Some(m) = model.map(str::trim).filter(|m| !m.is_empty()) else {
            return ModelRef::Builtin;
        };
        let lower = m.to_ascii_lowercase();
        if lower == "builtin"
            || lower.starts_with("builtin/")
            || lower == HASH_EMBEDDER_MODEL
            || lower == RULE_EXTRACTOR_NAME
        {
            return ModelRef::Builtin;
        }
        let http = |flavour, api_model: &str| ModelRef::Http {
            flavour,
            configured: m.to_owned(),
            api_model: api_model.to_owned(),
        };
        match m.split_once('/') {
            None => http(Flavour::OpenAi, m),
            Some((prefix, rest)) => match prefix.to_ascii_lowercase().as_str() {
                "openai" => http(Flavour::OpenAi, rest),
                "azure" => http(Flavour::Azure, rest),
                "ollama" | "ollama_chat" => http(Flavour::Ollama, rest),
                _ => http(Flavour::Compatible, m),
            },
        }
    }
}

/// Which embedder to build (built once per database: size does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum EmbeddingPlan {
    Builtin {
        dim: usize,
    },
    Http {
        endpoint: HttpEndpoint,
        name: String,
        api_model: String,
        dim: usize,
        send_dimensions: bool,
        batch_size: usize,
        options: HttpOptions,
    },
}

/// Which chat model to build.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum LlmPlan {
    Builtin,
    Http {
        endpoint: HttpEndpoint,
        name: String,
        api_model: String,
        options: HttpOptions,
    },
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub embedding: EmbeddingPlan,
    pub llm: LlmPlan,
    pub gleaning: bool,
}

const LLM_ROLE: &str = "llm";
const EMBEDDING_ROLE: &str = "embedding";

/// Resolves settings and environment into a plan.
pub(crate) fn resolve(
    s: &ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ProviderError> {
    let env_nonempty = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let llm_ref = ModelRef::parse(s.llm_model.as_deref().or(s.model.as_deref()));
    let emb_ref = ModelRef::parse(s.embedding_model.as_deref());
    let max_attempts = s
        .max_attempts
        .or_else(|| parse_env(&env_nonempty, "HRAG_HTTP_MAX_ATTEMPTS"))
        .unwrap_or(5)
        .max(1);

    let llm_flavour = match &llm_ref {
        ModelRef::Http { flavour, .. } => Some(*flavour),
        ModelRef::Builtin => None,
    };
    let llm = match llm_ref {
        ModelRef::Builtin => LlmPlan::Builtin,
        ModelRef::Http {
            flavour,
            configured,
            api_model,
        } => {
            let explicit = s
                .api_base
                .clone()
                .filter(|b| !b.trim().is_empty())
                .or_else(|| env_nonempty("HRAG_LLM_BASE_URL"));
            let endpoint = endpoint(s, env, flavour, LLM_ROLE, explicit, &configured)?;
            let timeout = s
                .llm_timeout_secs
                .or_else(|| parse_env(&env_nonempty, "LLM_TIMEOUT"))
                .unwrap_or(240.0);
            let options = HttpOptions {
                timeout: secs("llm_timeout_secs", timeout)?,
                max_attempts,
                max_concurrency: s
                    .llm_max_async
                    .or_else(|| parse_env(&env_nonempty, "MAX_ASYNC"))
                    .unwrap_or(4)
                    .max(1),
                ..HttpOptions::default()
            };
            LlmPlan::Http {
                endpoint,
                name: configured,
                api_model,
                options,
            }
        }
    };

    let embedding = match emb_ref {
        ModelRef::Builtin => {
            let dim = match s.embedding_dim {
                None => DEFAULT_HASH_DIM,
                Some(d) => dim_value(d)?,
            };
            EmbeddingPlan::Builtin { dim }
        }
        ModelRef::Http {
            flavour,
            configured,
            api_model,
        } => {
            let same_flavour = llm_flavour == Some(flavour);
            let explicit = s
                .embedding_api_base
                .clone()
                .filter(|b| !b.trim().is_empty())
                .or_else(|| env_nonempty("HRAG_EMBEDDING_BASE_URL"))
                .or_else(|| {
                    if same_flavour {
                        s.api_base
                            .clone()
                            .filter(|b| !b.trim().is_empty())
                            .or_else(|| env_nonempty("HRAG_LLM_BASE_URL"))
                    } else {
                        None
                    }
                });
            let endpoint = endpoint(s, env, flavour, EMBEDDING_ROLE, explicit, &configured)?;
            let dim = match s.embedding_dim {
                Some(d) => dim_value(d)?,
                None => match env_nonempty("EMBEDDING_DIM") {
                    Some(v) => {
                        let d = v.trim().parse::<i64>().map_err(|_| {
                            ProviderError::Invalid(format!(
                                "EMBEDDING_DIM='{v}' is not a whole number"
                            ))
                        })?;
                        dim_value(d)?
                    }
                    None => known_dim(&api_model).ok_or_else(|| {
                        ProviderError::Invalid(format!(
                            "embedding model '{configured}': its dimension is unknown; set \
                             model_config.embedding_dim (or EMBEDDING_DIM)"
                        ))
                    })?,
                },
            };
            let timeout = s
                .embedding_timeout_secs
                .or_else(|| parse_env(&env_nonempty, "EMBEDDING_TIMEOUT"))
                .unwrap_or(30.0);
            let options = HttpOptions {
                timeout: secs("embedding_timeout_secs", timeout)?,
                max_attempts,
                max_concurrency: s
                    .embedding_max_async
                    .or_else(|| parse_env(&env_nonempty, "EMBEDDING_FUNC_MAX_ASYNC"))
                    .unwrap_or(8)
                    .max(1),
                ..HttpOptions::default()
            };
            EmbeddingPlan::Http {
                endpoint,
                send_dimensions: api_model.contains("text-embedding-3"),
                name: configured,
                api_model,
                dim,
                batch_size: s
                    .embedding_batch_num
                    .or_else(|| parse_env(&env_nonempty, "EMBEDDING_BATCH_NUM"))
                    .unwrap_or(10)
                    .max(1),
                options,
            }
        }
    };

    let gleaning = s
        .max_gleaning
        .or_else(|| parse_env(&env_nonempty, "MAX_GLEANING"))
        .unwrap_or(0)
        > 0;
    Ok(Plan {
        embedding,
        llm,
        gleaning,
    })
}

fn parse_env<T: std::str::FromStr>(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<T> {
    let v = env(name)?;
    match v.trim().parse() {
        Ok(x) => Some(x),
        Err(_) => {
            tracing::warn!(
                variable = name,
                "ignoring an environment variable that does not parse"
            );
            None
        }
    }
}

fn secs(field: &str, v: f64) -> Result<Duration, ProviderError> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| ProviderError::Invalid(format!("{field}: {v} is not a positive duration")))
}

fn dim_value(d: i64) -> Result<usize, ProviderError> {
    if (1..=65_536).contains(&d) {
        Ok(d as usize)
    } else {
        Err(ProviderError::Invalid(format!(
            "embedding_dim {d} is outside 1–65536"
        )))
    }
}

/// Native sizes of common embedding models.
fn known_dim(model: &str) -> Option<usize> {
    let m = model.to_ascii_lowercase();
    let m = m.split(':').next().unwrap_or(&m);
    let m = m.rsplit('/').next().unwrap_or(m);
    Some(match m {
        "text-embedding-3-small" | "text-embedding-ada-002" => 1536,
        "text-embedding-3-large" => 3072,
        "nomic-embed-text" => 768,
        "mxbai-embed-large" | "bge-m3" | "bge-large" | "snowflake-arctic-embed" => 1024,
        "all-minilm" => 384,
        _ => return None,
    })
}

/// Builds the endpoint of a role: base URL, key and API version.
fn endpoint(
    s: &ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
    flavour: Flavour,
    role: &str,
    explicit_base: Option<String>,
    configured: &str,
) -> Result<HttpEndpoint, ProviderError> {
    let first_env = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
    };
    let base = match explicit_base {
        Some(b) => b,
        None => match flavour {
            Flavour::OpenAi => first_env(&["OPENAI_BASE_URL", "OPENAI_API_BASE"])
                .unwrap_or_else(|| "https://api.openai.com/v1".to_owned()),
            Flavour::Azure => {
                first_env(&["AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"]).ok_or_else(|| {
                    ProviderError::Invalid(format!(
                        "model '{configured}' is an Azure deployment: set model_config.api_base \
                         or AZURE_API_BASE (or AZURE_OPENAI_ENDPOINT) to the resource endpoint"
                    ))
                })?
            }
            Flavour::Ollama => match first_env(&["OLLAMA_HOST"]) {
                Some(h) => ollama_base(&h),
                None => "http://127.0.0.1:11434/v1".to_owned(),
            },
            Flavour::Compatible => {
                first_env(&["OPENAI_BASE_URL", "OPENAI_API_BASE"]).ok_or_else(|| {
                    ProviderError::Invalid(format!(
                        "model '{configured}' needs the base URL of an OpenAI-compatible server \
                         (vLLM, LiteLLM proxy): set model_config.api_base, HRAG_LLM_BASE_URL / \
                         HRAG_EMBEDDING_BASE_URL or OPENAI_BASE_URL"
                    ))
                })?
            }
        },
    };
    let base = base.trim().trim_end_matches('/').to_owned();
    match url::Url::parse(&base) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => {
            return Err(ProviderError::Invalid(format!(
                "model '{configured}': base URL '{}' is not an http(s) URL",
                redact_url(&base)
            )));
        }
    }
    let api_key = find_key(s, env, flavour, role)?;
    let api_version = if flavour.is_azure() {
        Some(
            s.api_version
                .clone()
                .filter(|v| !v.trim().is_empty())
                .or_else(|| first_env(&["AZURE_API_VERSION", "OPENAI_API_VERSION"]))
                .unwrap_or_else(|| "2024-02-01".to_owned()),
        )
    } else {
        None
    };
    Ok(HttpEndpoint {
        flavour,
        base_url: base,
        api_key,
        api_version,
    })
}

/// `OLLAMA_HOST` is `host`, `host:port` or a URL; the OpenAI-compatible API is under `/v1`.
fn ollama_base(host: &str) -> String {
    let h = host.trim().trim_end_matches('/');
    let with_scheme = if h.contains("://") {
        h.to_owned()
    } else if h.contains(':') {
        format!("http://{h}")
    } else {
        format!("http://{h}:11434")
    };
    if with_scheme.ends_with("/v1") {
        with_scheme
    } else {
        format!("{with_scheme}/v1")
    }
}

fn find_key(
    s: &ProviderSettings,
    env: &dyn Fn(&str) -> Option<String>,
    flavour: Flavour,
    role: &str,
) -> Result<Option<ApiKey>, ProviderError> {
    let family = match flavour {
        Flavour::Compatible => "openai",
        f => f.as_str(),
    };
    let wanted = [
        role.to_owned(),
        family.to_owned(),
        format!("{family}_api_key"),
    ];
    for name in &wanted {
        let found = s
            .api_keys
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name));
        if let Some((k, v)) = found {
            match interpolate(v, env) {
                Ok(key) if !key.trim().is_empty() => return Ok(Some(ApiKey::new(key.trim()))),
                Ok(_) => {}
                Err(var) => tracing::warn!(
                    api_key = %k,
                    variable = %var,
                    "model_config.api_keys refers to an unset environment variable"
                ),
            }
        }
    }
    let env_names: &[&str] = match flavour {
        Flavour::OpenAi | Flavour::Compatible => &["OPENAI_API_KEY"],
        Flavour::Azure => &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"],
        Flavour::Ollama => &[],
    };
    Ok(env_names
        .iter()
        .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
        .map(|v| ApiKey::new(v.trim())))
}

/// Replaces every `${NAME}` with the variable's value; `Err(NAME)` when one is unset.
pub(crate) fn interpolate(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = after[..end].trim();
                match env(name) {
                    Some(v) => out.push_str(&v),
                    None => return Err(name.to_owned()),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A URL without its user-info password (for messages).
pub(crate) fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => u.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn model_strings_parse() {
        assert_eq!(ModelRef::parse(None), ModelRef::Builtin);
        assert_eq!(ModelRef::parse(Some("  ")), ModelRef::Builtin);
        assert_eq!(ModelRef::parse(Some("builtin")), ModelRef::Builtin);
        assert_eq!(ModelRef::parse(Some("hrag-hash-v1")), ModelRef::Builtin);
        let http = |f, c: &str, a: &str| ModelRef::Http {
            flavour: f,
            configured: c.into(),
            api_model: a.into(),
        };
        assert_eq!(
            ModelRef::parse(Some("openai/gpt-4o-mini")),
            http(Flavour::OpenAi, "openai/gpt-4o-mini", "gpt-4o-mini")
        );
        assert_eq!(
            ModelRef::parse(Some("gpt-4o")),
            http(Flavour::OpenAi, "gpt-4o", "gpt-4o")
        );
        assert_eq!(
            ModelRef::parse(Some("azure/my-gpt4o")),
            http(Flavour::Azure, "azure/my-gpt4o", "my-gpt4o")
        );
        assert_eq!(
            ModelRef::parse(Some("ollama/llama3.1:8b")),
            http(Flavour::Ollama, "ollama/llama3.1:8b", "llama3.1:8b")
        );
        assert_eq!(
            ModelRef::parse(Some("Qwen/Qwen2.5-7B-Instruct")),
            http(
                Flavour::Compatible,
                "Qwen/Qwen2.5-7B-Instruct",
                "Qwen/Qwen2.5-7B-Instruct"
            )
        );
    }

    #[test]
    fn nothing_configured_is_builtin() {
        let plan = resolve(&ProviderSettings::default(), &env_of(&[])).expect("plan");
        assert!(matches!(
            plan.embedding,
            EmbeddingPlan::Builtin {
                dim: DEFAULT_HASH_DIM
            }
        ));
        assert!(matches!(plan.llm, LlmPlan::Builtin));
        assert!(!plan.gleaning);
        let s = ProviderSettings {
            embedding_dim: Some(128),
            ..Default::default()
        };
        let plan = resolve(&s, &env_of(&[])).expect("plan");
        assert!(matches!(
            plan.embedding,
            EmbeddingPlan::Builtin { dim: 128 }
        ));
        let s = ProviderSettings {
            embedding_dim: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            resolve(&s, &env_of(&[])),
            Err(ProviderError::Invalid(_))
        ));
    }

    #[test]
    fn openai_from_env_and_keys() {
        let s = ProviderSettings {
            model: Some("openai/gpt-4o-mini".into()),
            embedding_model: Some("openai/text-embedding-3-small".into()),
            ..Default::default()
        };
        let plan = resolve(
            &s,
            &env_of(&[
                ("OPENAI_API_KEY", "sk-env"),
                ("OPENAI_BASE_URL", "http://proxy:4000/v1/"),
            ]),
        )
        .expect("plan");
        let LlmPlan::Http {
            endpoint,
            name,
            api_model,
            options,
        } = plan.llm
        else {
            panic!("http llm expected")
        };
        assert_eq!(name, "openai/gpt-4o-mini");
        assert_eq!(api_model, "gpt-4o-mini");
        assert_eq!(endpoint.base_url, "http://proxy:4000/v1");
        assert_eq!(endpoint.api_key, Some(ApiKey::new("sk-env")));
        assert_eq!(options.timeout, Duration::from_secs(240));
        assert_eq!(options.max_concurrency, 4);
        let EmbeddingPlan::Http {
            dim,
            send_dimensions,
            batch_size,
            ..
        } = plan.embedding
        else {
            panic!("http embedder expected")
        };
        assert_eq!((dim, send_dimensions, batch_size), (1536, true, 10));
    }

    #[test]
    fn api_keys_interpolate_and_base_precedence() {
        let mut keys = BTreeMap::new();
        keys.insert("OpenAI".to_owned(), "${MY_KEY}".to_owned());
        keys.insert("embedding".to_owned(), "emb-${SUFFIX}".to_owned());
        let s = ProviderSettings {
            llm_model: Some("gpt-4o".into()),
            model: Some("azure/ignored".into()),
            embedding_model: Some("openai/custom-embed".into()),
            embedding_dim: Some(64),
            api_keys: keys,
            api_base: Some("http://llm-base/v1".into()),
            ..Default::default()
        };
        let env = env_of(&[
            ("MY_KEY", "k1"),
            ("SUFFIX", "x"),
            ("HRAG_LLM_BASE_URL", "http://env-llm/v1"),
            ("OPENAI_API_KEY", "env-key"),
        ]);
        let plan = resolve(&s, &env).expect("plan");
        let LlmPlan::Http { endpoint, .. } = plan.llm else {
            panic!("http llm expected")
        };
        assert_eq!(endpoint.base_url, "http://llm-base/v1");
        assert_eq!(endpoint.api_key, Some(ApiKey::new("k1")));
        let EmbeddingPlan::Http { endpoint, dim, .. } = plan.embedding else {
            panic!("http embedder expected")
        };
        // Same flavour as the LLM: the LLM's explicit base applies.
        assert_eq!(endpoint.base_url, "http://llm-base/v1");
        assert_eq!(endpoint.api_key, Some(ApiKey::new("emb-x")));
        assert_eq!(dim, 64);
    }

    #[test]
    fn azure_and_ollama_endpoints() {
        let s = ProviderSettings {
            model: Some("azure/gpt4o-deploy".into()),
            embedding_model: Some("ollama/nomic-embed-text".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolve(&s, &env_of(&[])),
            Err(ProviderError::Invalid(m)) if m.contains("AZURE_API_BASE")
        ));
        let env = env_of(&[
            ("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/"),
            ("AZURE_OPENAI_API_KEY", "az"),
            ("OLLAMA_HOST", "gpu-box:11434"),
        ]);
        let plan = resolve(&s, &env).expect("plan");
        let LlmPlan::Http {
            endpoint,
            api_model,
            ..
        } = plan.llm
        else {
            panic!("http llm expected")
        };
        assert_eq!(endpoint.flavour, Flavour::Azure);
        assert_eq!(endpoint.base_url, "https://res.openai.azure.com");
        assert_eq!(endpoint.api_version.as_deref(), Some("2024-02-01"));
        assert_eq!(endpoint.api_key, Some(ApiKey::new("az")));
        assert_eq!(api_model, "gpt4o-deploy");
        let EmbeddingPlan::Http { endpoint, dim, .. } = plan.embedding else {
            panic!("http embedder expected")
        };
        assert_eq!(endpoint.base_url, "http://gpu-box:11434/v1");
        assert_eq!(endpoint.api_key, None);
        assert_eq!(dim, 768);
    }

    #[test]
    fn foreign_prefix_needs_a_base_and_unknown_dim_is_an_error() {
        let s = ProviderSettings {
            model: Some("anthropic/claude-3-haiku".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolve(&s, &env_of(&[])),
            Err(ProviderError::Invalid(m)) if m.contains("base URL")
        ));
        let s = ProviderSettings {
            embedding_model: Some("openai/some-embedder".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolve(&s, &env_of(&[])),
            Err(ProviderError::Invalid(m)) if m.contains("embedding_dim")
        ));
        let plan = resolve(&s, &env_of(&[("EMBEDDING_DIM", "256")])).expect("plan");
        assert!(matches!(
            plan.embedding,
            EmbeddingPlan::Http { dim: 256, .. }
        ));
    }

    #[test]
    fn debug_never_shows_keys() {
        let mut keys = BTreeMap::new();
        keys.insert("openai".to_owned(), "sk-secret".to_owned());
        let s = ProviderSettings {
            api_keys: keys,
            api_base: Some("http://u:pw@host/v1".into()),
            ..Default::default()
        };
        let shown = format!("{s:?} {:?}", ApiKey::new("sk-secret"));
        assert!(!shown.contains("sk-secret"), "{shown}");
        assert!(!shown.contains("pw@"), "{shown}");
    }

    #[test]
    fn settings_deserialise_from_a_model_config_mapping() {
        let yaml = "llm_model: azure/gpt-4o\nembedding_model: azure/text-embedding-3-small\n\
                    embedding_dim: 1536\napi_keys:\n  azure: ${AZ}\napi_base: https://r.example\n\
                    max_gleaning: 1\nsome_future_key: [1, 2]\n";
        let s: ProviderSettings = serde_yaml_ng::from_str(yaml).unwrap();
        assert_eq!(s.llm_model.as_deref(), Some("azure/gpt-4o"));
        assert_eq!(s.embedding_dim, Some(1536));
        assert_eq!(s.api_keys.get("azure").map(String::as_str), Some("${AZ}"));
        let plan = resolve(&s, &env_of(&[("AZ", "secret")])).unwrap();
        assert!(plan.gleaning);
        let EmbeddingPlan::Http {
            endpoint,
            send_dimensions,
            ..
        } = plan.embedding
        else {
            panic!("http embedder expected")
        };
        assert_eq!(endpoint.base_url, "https://r.example");
        assert_eq!(endpoint.api_key, Some(ApiKey::new("secret")));
        assert!(send_dimensions);
    }

    #[test]
    fn interpolation() {
        let env = env_of(&[("A", "1")]);
        assert_eq!(interpolate("x${A}y${A}", &env), Ok("x1y1".to_owned()));
        assert_eq!(interpolate("plain", &env), Ok("plain".to_owned()));
        assert_eq!(interpolate("${B}", &env), Err("B".to_owned()));
        assert_eq!(interpolate("${open", &env), Ok("${open".to_owned()));
    }
}
