//! A small seeded mutation fuzzer for stable Rust, shared by the fuzz harnesses of the crates
//! that parse untrusted bytes (`tests/fuzz.rs` in mdm-protocol, crypto, abm and service, and
//! `tests/fuzz_http.rs` in guardmdm).
//!
//! Each case starts from one of a few VALID seed messages (a real-shaped check-in, a signed
//! MachineInfo, a SCEP `PKCSReq`, …) and stacks one to eight mutations on it: byte and bit
//! flips, insertions, deletions, truncation, repeating a slice, splicing with another seed,
//! inserting (and repeating, so nesting) tokens of the format, changing numbers, and, for DER,
//! changing the tag or the length of a real TLV header found by walking the structure.
//!
//! A [`Campaign`] runs a target on a bounded number of cases, each inside `catch_unwind`, and
//! returns a [`Report`]: the cases run, the time, the slowest case, the peak RSS of the
//! process (`VmHWM`) and every finding with its input in hex. Cases are reproducible: case `i`
//! of seed `s` is always the same input (`GUARDMDM_FUZZ_SEED=s GUARDMDM_FUZZ_CASE=i`).
//!
//! Environment: `GUARDMDM_FUZZ_CASES` (cases of a full campaign), `GUARDMDM_FUZZ_SEED`
//! (decimal or `0x` hex; a full campaign otherwise takes one from the clock, a smoke run uses
//! a fixed one), `GUARDMDM_FUZZ_CASE` (run only that case and print its input),
//! `GUARDMDM_FUZZ_LAST_INPUT` (a file each input is written to before it runs, so a crash
//! that aborts the process, such as a stack overflow, leaves its input behind).

mod der;
mod mutate;
mod rng;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

pub use mutate::{MAX_INPUT, Mutator};
pub use rng::Rng;

/// The seed of smoke runs unless `GUARDMDM_FUZZ_SEED` says otherwise, so the normal test run
/// is deterministic.
pub const SMOKE_SEED: u64 = 0x6d64_6d5f_6675_7a7a;

/// Cases of a smoke run: enough to catch a regression in the normal test run, cheap enough to
/// keep it fast.
pub const SMOKE_CASES: u64 = 300;

/// A finding: a case whose target panicked or broke one of its invariants.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The case number (reproduce with `GUARDMDM_FUZZ_CASE`).
    pub case: u64,
    /// The panic message or the broken invariant.
    pub what: String,
    /// The input.
    pub input: Vec<u8>,
}

/// What a campaign did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The campaign's name.
    pub name: String,
    /// The seed of the run.
    pub seed: u64,
    /// Cases run.
    pub cases: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// The slowest case's time.
    pub slowest: Duration,
    /// The slowest case's number and input length.
    pub slowest_case: (u64, usize),
    /// The process's peak resident set (`VmHWM`, KiB) at the end, if known.
    pub peak_rss_kib: Option<u64>,
    /// How many cases the target accepted (parsed without error), for a sense of coverage.
    pub accepted: u64,
    /// Every finding.
    pub findings: Vec<Finding>,
}

impl Report {
    /// One line for the log and `docs/security.md`.
    #[must_use]
    pub fn summary(&self) -> String {
        format!(
            "fuzz {}: seed {:#x}, {} cases ({} accepted) in {:.1} s, slowest case #{} ({} bytes) {:.2} ms, peak RSS {} MiB, {} finding(s)",
            self.name,
            self.seed,
            self.cases,
            self.accepted,
            self.elapsed.as_secs_f64(),
            self.slowest_case.0,
            self.slowest_case.1,
            self.slowest.as_secs_f64() * 1000.0,
            self.peak_rss_kib
                .map_or_else(|| "?".to_string(), |k| format!("{:.1}", k as f64 / 1024.0)),
            self.findings.len(),
        )
    }

    /// Prints the summary to stderr and fails (panics, this is test support) when there is a
    /// finding, showing the first few inputs in hex.
    #[allow(clippy::panic)]
    pub fn assert_clean(&self) {
        eprintln!("{}", self.summary());
        if self.findings.is_empty() {
            return;
        }
        let mut text = String::new();
        for f in self.findings.iter().take(5) {
            text.push_str(&format!(
                "\ncase #{} (GUARDMDM_FUZZ_SEED={:#x} GUARDMDM_FUZZ_CASE={}): {}\ninput ({} bytes): {}\n",
                f.case,
                self.seed,
                f.case,
                f.what,
                f.input.len(),
                hex(&f.input)
            ));
        }
        panic!(
            "fuzz {}: {} finding(s){text}",
            self.name,
            self.findings.len()
        );
    }
}

/// What a target says about one input.
#[derive(Debug)]
pub enum Verdict {
    /// Parsed and accepted.
    Accepted,
    /// Refused with an error, as untrusted input may be.
    Refused,
    /// An invariant broke (an internal error for bad input, a 5xx, …): a finding.
    Broken(String),
}

/// A bounded, seeded run of one target.
#[derive(Debug, Clone)]
pub struct Campaign {
    name: String,
    cases: u64,
    seed: u64,
    only: Option<u64>,
    last_input: Option<std::path::PathBuf>,
}

impl Campaign {
    /// A smoke run: [`SMOKE_CASES`] cases from [`SMOKE_SEED`] (or `GUARDMDM_FUZZ_SEED`).
    #[must_use]
    pub fn smoke(name: &str) -> Self {
        Self {
            name: format!("{name} (smoke)"),
            cases: SMOKE_CASES,
            seed: env_u64("GUARDMDM_FUZZ_SEED").unwrap_or(SMOKE_SEED),
            only: env_u64("GUARDMDM_FUZZ_CASE"),
            last_input: env_path("GUARDMDM_FUZZ_LAST_INPUT"),
        }
    }

    /// A full run: `GUARDMDM_FUZZ_CASES` cases (else `default_cases`), from
    /// `GUARDMDM_FUZZ_SEED` or a seed taken from the clock.
    #[must_use]
    pub fn full(name: &str, default_cases: u64) -> Self {
        let seed = env_u64("GUARDMDM_FUZZ_SEED").unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            // Only the low bits vary between runs; mixing spreads them.
            Rng::new(u64::try_from(nanos & u128::from(u64::MAX)).unwrap_or(0)).next_u64()
        });
        Self {
            name: name.to_string(),
            cases: env_u64("GUARDMDM_FUZZ_CASES").unwrap_or(default_cases),
            seed,
            only: env_u64("GUARDMDM_FUZZ_CASE"),
            last_input: env_path("GUARDMDM_FUZZ_LAST_INPUT"),
        }
    }

    /// The campaign's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The campaign's seed.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The numbers of the cases to run: `0..cases`, or the one `GUARDMDM_FUZZ_CASE` names.
    #[must_use]
    pub fn case_numbers(&self) -> std::ops::Range<u64> {
        match self.only {
            Some(i) => i..i.saturating_add(1),
            None => 0..self.cases,
        }
    }

    /// The random source of case `case`: the same for the same seed and case.
    #[must_use]
    pub fn rng(&self, case: u64) -> Rng {
        Rng::new(self.seed ^ case.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// The input of case `case`.
    #[must_use]
    pub fn input(&self, mutator: &Mutator, case: u64) -> Vec<u8> {
        mutator.mutate(&mut self.rng(case))
    }

    /// Runs `target` on every case's input, each in `catch_unwind`.
    pub fn run(&self, mutator: &Mutator, mut target: impl FnMut(&[u8]) -> Verdict) -> Report {
        eprintln!(
            "fuzz {}: seed {:#x} (set GUARDMDM_FUZZ_SEED to repeat), {} case(s)",
            self.name,
            self.seed,
            self.case_numbers().count()
        );
        let mut stats = Stats::new(self);
        for case in self.case_numbers() {
            let input = self.input(mutator, case);
            if self.only.is_some() {
                eprintln!(
                    "case #{case} input ({} bytes): {}",
                    input.len(),
                    hex(&input)
                );
            }
            if let Some(path) = &self.last_input {
                // A crash that unwinding cannot catch (a stack overflow aborts) leaves its
                // input here.
                let _ = std::fs::write(path, &input);
            }
            let started = Instant::now();
            let verdict = catch_unwind(AssertUnwindSafe(|| target(&input)));
            let verdict = verdict.unwrap_or_else(|payload| {
                Verdict::Broken(format!("panicked: {}", panic_message(payload.as_ref())))
            });
            stats.record(case, input, started.elapsed(), verdict);
        }
        stats.finish()
    }
}

/// Collects a run's numbers, for runners that drive their cases themselves (an async target).
#[derive(Debug)]
pub struct Stats {
    report: Report,
    started: Instant,
}

impl Stats {
    /// Starts the clock for `campaign`.
    #[must_use]
    pub fn new(campaign: &Campaign) -> Self {
        Self {
            report: Report {
                name: campaign.name.clone(),
                seed: campaign.seed,
                cases: 0,
                elapsed: Duration::ZERO,
                slowest: Duration::ZERO,
                slowest_case: (0, 0),
                peak_rss_kib: None,
                accepted: 0,
                findings: Vec::new(),
            },
            started: Instant::now(),
        }
    }

    /// Records one case.
    pub fn record(&mut self, case: u64, input: Vec<u8>, took: Duration, verdict: Verdict) {
        let r = &mut self.report;
        r.cases += 1;
        if took > r.slowest {
            r.slowest = took;
            r.slowest_case = (case, input.len());
        }
        match verdict {
            Verdict::Accepted => r.accepted += 1,
            Verdict::Refused => {}
            Verdict::Broken(what) => r.findings.push(Finding { case, what, input }),
        }
    }

    /// The report, with the time and the peak RSS.
    #[must_use]
    pub fn finish(mut self) -> Report {
        self.report.elapsed = self.started.elapsed();
        self.report.peak_rss_kib = peak_rss_kib();
        self.report
    }
}

/// The process's peak resident set size in KiB (`VmHWM` of `/proc/self/status`; Linux only).
#[must_use]
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Lower-case hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_string())
}

// Test support, not the server: the campaign's knobs come from the environment of the test run.
#[allow(clippy::disallowed_methods)]
fn env_path(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os(name).map(std::path::PathBuf::from)
}

// Test support, not the server: the campaign's knobs come from the environment of the test run.
#[allow(clippy::disallowed_methods)]
fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Declares a parser's pair of fuzz tests: `$smoke`, a short run with a fixed seed that the
/// normal `cargo test` runs, and `$full`, an ignored campaign of `$cases` cases (more with
/// `GUARDMDM_FUZZ_CASES`), each from `$mutator`'s seeds into `$target`.
#[macro_export]
macro_rules! harness {
    ($smoke:ident, $full:ident, $name:literal, $mutator:expr, $target:expr, $cases:expr $(,)?) => {
        #[test]
        fn $smoke() {
            $crate::Campaign::smoke($name)
                .run(&$mutator, $target)
                .assert_clean();
        }

        #[test]
        #[ignore = "a long fuzz campaign; run in release with --ignored"]
        fn $full() {
            $crate::Campaign::full($name, $cases)
                .run(&$mutator, $target)
                .assert_clean();
        }
    };
}
