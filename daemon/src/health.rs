//! Process health figures: resident memory (current and peak) and open file descriptors.

/// Resident set size now and at its peak, in bytes.
pub struct Memory {
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

pub fn memory() -> Memory {
    let pid = sysinfo::Pid::from_u32(std::process::id());
    let rss_bytes = match sysinfo::System::new() {
        Ok(mut sys) => {
            sys.refresh_processes_specifics(
                sysinfo::ProcessesToUpdate::Some(&[pid]),
                true,
                sysinfo::ProcessRefreshKind::nothing().with_memory(),
            );
            sys.process(pid).map(|p| p.memory()).unwrap_or(0)
        }
        Err(_) => 0,
    };
    // sysinfo has no high-water mark; the kernel keeps one in VmHWM.
    let peak_rss_bytes = proc_status_kib("VmHWM:")
        .map(|k| k * 1024)
        .unwrap_or(rss_bytes);
    Memory {
        rss_bytes,
        peak_rss_bytes: peak_rss_bytes.max(rss_bytes),
    }
}

fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Number of open file descriptors of this process.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}
