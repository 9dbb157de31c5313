//! One output file: buffered, counting its bytes, fsynced when finished; and the streaming
//! form of the top-level object `json.dump(obj, indent=2, ensure_ascii=False)` writes.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::value::RawValue;

use super::error::ExportError;
use crate::storage::json::jsonio;

/// Permission bits of an exported file (what Python's `open(..., "w")` gives under the usual
/// umask).
const FILE_MODE: u32 = 0o644;

pub struct Out {
    w: BufWriter<File>,
    path: PathBuf,
    bytes: u64,
}

impl Out {
    pub fn create(path: &Path) -> Result<Out, ExportError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| ExportError::write(path, e))?;
        Ok(Out {
            w: BufWriter::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            bytes: 0,
        })
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The error of a failed write to this file.
    pub fn err(&self, e: io::Error) -> ExportError {
        ExportError::write(&self.path, e)
    }

    /// Flushes and fsyncs; returns the file's size.
    pub fn finish(self) -> Result<u64, ExportError> {
        let path = self.path;
        let file = self
            .w
            .into_inner()
            .map_err(|e| ExportError::write(&path, e.into_error()))?;
        file.sync_all().map_err(|e| ExportError::write(&path, e))?;
        Ok(self.bytes)
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// A top-level JSON object written member by member, byte for byte as LightRAG's
/// `write_json` lays it out (see `jsonio::write_object_indent2`, its whole-map counterpart).
pub struct ObjectWriter {
    out: Out,
    members: u64,
}

impl ObjectWriter {
    pub fn create(path: &Path) -> Result<ObjectWriter, ExportError> {
        let mut out = Out::create(path)?;
        out.write_all(b"{").map_err(|e| out.err(e))?;
        Ok(ObjectWriter { out, members: 0 })
    }

    pub fn member(&mut self, key: &str, value: &RawValue) -> Result<(), ExportError> {
        let first = self.members == 0;
        let w = &mut self.out;
        let r = (|| {
            w.write_all(if first { b"\n  " } else { b",\n  " })?;
            jsonio::write_py_str(w, key)?;
            w.write_all(b": ")?;
            jsonio::write_indented(w, value.get(), 1)
        })();
        r.map_err(|e| self.out.err(e))?;
        self.members += 1;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.out.bytes()
    }

    pub fn finish(mut self) -> Result<u64, ExportError> {
        let end: &[u8] = if self.members == 0 { b"}" } else { b"\n}" };
        self.out.write_all(end).map_err(|e| self.out.err(e))?;
        self.out.finish()
    }
}
