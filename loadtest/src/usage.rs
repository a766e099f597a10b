//! CPU time and memory of processes, from the kernel's own accounting.
//!
//! The server's CPU time is `utime + stime` of `/proc/PID/stat` (all its
//! threads, in clock ticks of `sysconf(_SC_CLK_TCK)`); its memory is `VmHWM`
//! (peak resident set) and `VmRSS` of `/proc/PID/status`. This process's own
//! CPU time comes from `getrusage`.

use std::io;

/// CPU seconds (user + system) this process used so far.
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer is always allowed.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// `utime + stime` in ticks from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after the last ')' start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds (user + system, all threads) of process `pid` so far.
pub fn process_cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_ticks(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc stat"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub peak_rss: u64,
    pub rss: u64,
}

/// Reads `VmHWM` and `VmRSS` from the text of `/proc/PID/status`.
pub fn parse_status_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(Memory {
        peak_rss: field("VmHWM:")?,
        rss: field("VmRSS:")?,
    })
}

pub fn process_memory_kib(pid: u32) -> io::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_memory(&status)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_skip_odd_command_names() {
        let stat = "4242 (trackgate (x) y) S 1 4242 4242 0 -1 4194304 1234 0 0 0 150 25 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(175));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_memory_fields() {
        let status =
            "Name:\ttrackgate\nVmPeak:\t  900000 kB\nVmHWM:\t   45120 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(
            parse_status_memory(status),
            Some(Memory {
                peak_rss: 45120,
                rss: 40000
            })
        );
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(process_cpu_seconds(me).unwrap() > 0.0);
        assert!(self_cpu_seconds() > 0.0);
        assert!(process_memory_kib(me).unwrap().peak_rss > 0);
    }
}
