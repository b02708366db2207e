//! Helpers shared by the on-demand benchmarks (`cargo bench`): sizes from
//! the environment, medians of timings and the process's CPU time.

use std::time::Duration;

/// The `usize` in environment variable `name`, or `default` when it is
/// unset or not a number.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of `v` (sorted in place; the mean of the middle two for an
/// even count, zero when empty).
pub fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// CPU time used so far by every thread of this process (the caller's and
/// the runtime's, drivers' tasks included), from
/// `/proc/self/task/*/schedstat` (ns); None where that is not readable.
/// Wall-clock times swing with the machine's load, CPU time much less.
pub fn process_cpu() -> Option<Duration> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(
            median(&mut [ms(4), ms(1), ms(2), ms(3)]),
            Duration::from_micros(2500)
        );
        assert_eq!(median(&mut []), Duration::ZERO);
    }

    #[test]
    fn env_falls_back_when_unset_or_not_a_number() {
        assert_eq!(env("PERSISTENCE_TESTING_SURELY_UNSET_VARIABLE", 7), 7);
    }
}
