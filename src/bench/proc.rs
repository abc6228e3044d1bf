//! What `/proc` tells of a process (memory, CPU time), and percentiles of sorted timings: the
//! figures both benchmarks report.

/// The value `per_cent` of the way through ascending `sorted` (0 when it is empty).
pub fn percentile(sorted: &[f64], per_cent: usize) -> f64 {
    let index = (sorted.len() * per_cent / 100).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or(0.0)
}

/// Peak resident set size of this process from /proc (0 where unavailable).
pub fn peak_rss_mib() -> f64 {
    proc_status_mib("self", "VmHWM")
}

/// A memory field (in kB) of `/proc/PROCESS/status`, in MiB (0 where unavailable).
pub fn proc_status_mib(process: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time all threads of `/proc/PROCESS` have run so far, in seconds (from each thread's
/// schedstat, in nanoseconds; else from the process's stat, in clock ticks; 0 where unavailable).
pub fn proc_cpu_seconds(process: &str) -> f64 {
    let on_cpu_ns = |task: std::fs::DirEntry| {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        stat.split_whitespace().next()?.parse::<f64>().ok()
    };
    let scheduled = std::fs::read_dir(format!("/proc/{process}/task"))
        .ok()
        .and_then(|tasks| tasks.map(|t| on_cpu_ns(t.ok()?)).sum::<Option<f64>>());
    scheduled.map_or_else(|| stat_cpu_seconds(process), |ns| ns / 1e9)
}

/// User plus system time of a process from `/proc/PROCESS/stat`, in clock ticks (coarser than
/// schedstat, which kernels without scheduler statistics lack); 0 where unavailable.
fn stat_cpu_seconds(process: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{process}/stat")) else { return 0.0 };
    // Fields after the command name (which may hold spaces, so split after its closing paren):
    // state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = fields.get(11..13).map_or(0.0, |t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_second > 0 { ticks / per_second as f64 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_a_busy_process_grows() {
        // Another process, as the server is: this test binary's own threads come and go.
        let mut busy = std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
        let pid = busy.id().to_string();
        let started = std::time::Instant::now();
        // At most 5 s: the clock-tick fallback moves in steps of 10 ms.
        while proc_cpu_seconds(&pid) < 0.02 && started.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (scheduled, ticks) = (proc_cpu_seconds(&pid), stat_cpu_seconds(&pid));
        busy.kill().unwrap();
        busy.wait().unwrap();
        assert!(scheduled >= 0.02, "CPU time did not grow: {scheduled}");
        assert!(ticks > 0.0, "the /proc/PID/stat fallback reads the process");
        assert_eq!(proc_cpu_seconds("no-such-process"), 0.0);
    }

    #[test]
    fn percentile_indexes_the_sorted_values() {
        let v: Vec<f64> = (0..200).map(f64::from).collect();
        assert_eq!((percentile(&v, 50), percentile(&v, 99), percentile(&v, 100)), (100.0, 198.0, 199.0));
        assert_eq!(percentile(&[7.0], 99), 7.0);
        assert_eq!(percentile(&[], 50), 0.0);
    }
}
