//! Migration of a knowledge base between backends (issue #6, PRODUCT §7).
//!
//! `source` reads a LightRAG JSON working directory as streams whose memory does not grow with
//! the input; the target side and the daemon wiring are separate steps.

pub mod source;
