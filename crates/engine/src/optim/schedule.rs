//! Learning-rate schedules, evaluated before every step from the run's progress in epochs.

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// How the learning rate evolves over a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Decay factor.
        gamma: f64,
    },
    /// Linear warm-up from 0 over `warmup` epochs, then cosine decay to 0 at the end.
    Cosine {
        /// Warm-up epochs (may be fractional).
        warmup: f64,
    },
    /// One-cycle: cosine rise from base/25 to base over the first 30% of the run, then cosine
    /// decay to base/25 000.
    OneCycle,
}

/// The command-line form [`Schedule::parse`] reads.
impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
            Schedule::Cosine { warmup } if *warmup == 0.0 => write!(f, "cosine"),
            Schedule::Cosine { warmup } => write!(f, "cosine:{warmup}"),
            Schedule::OneCycle => write!(f, "one-cycle"),
        }
    }
}

impl Schedule {
    /// Whether the rate at a step depends on the run's length (so a run cannot be extended
    /// without changing the rates of the steps already taken).
    pub fn depends_on_length(&self) -> bool {
        matches!(self, Schedule::Cosine { .. } | Schedule::OneCycle)
    }

    /// Parses the command-line form: `constant`, `step:EVERY:GAMMA`, `cosine[:WARMUP]`, `one-cycle`.
    pub fn parse(text: &str) -> crate::Result<Schedule> {
        let parts: Vec<&str> = text.split(':').collect();
        let bad = |why: String| crate::Error::value("schedule", text, why);
        let num = |s: &str| s.parse::<f64>().map_err(|_| bad(format!("'{s}' is not a number")));
        match parts.as_slice() {
            ["constant"] => Ok(Schedule::Constant),
            ["step", every, gamma] => {
                let every = every.parse::<usize>().ok().filter(|&e| e > 0);
                let every = every.ok_or_else(|| bad("step needs a whole number of epochs ≥ 1".into()))?;
                Ok(Schedule::Step { every, gamma: num(gamma)? })
            }
            ["cosine"] => Ok(Schedule::Cosine { warmup: 0.0 }),
            ["cosine", warmup] => Ok(Schedule::Cosine { warmup: num(warmup)?.max(0.0) }),
            ["one-cycle"] => Ok(Schedule::OneCycle),
            _ => Err(bad("expected constant, step:EVERY:GAMMA, cosine[:WARMUP] or one-cycle".into())),
        }
    }

    /// The rate after `progress` of `total` epochs, for base rate `base`.
    pub fn rate(&self, base: f32, progress: f64, total: f64) -> f32 {
        let base = f64::from(base);
        let cosine = |from: f64, to: f64, t: f64| to + (from - to) * 0.5 * (1.0 + (PI * t.clamp(0.0, 1.0)).cos());
        let rate = match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powi((progress / every as f64).floor() as i32),
            Schedule::Cosine { warmup } if progress < warmup => base * progress / warmup,
            Schedule::Cosine { warmup } => cosine(base, 0.0, (progress - warmup) / (total - warmup).max(1e-9)),
            Schedule::OneCycle => {
                let peak = 0.3 * total;
                if progress < peak {
                    cosine(base, base / 25.0, 1.0 - progress / peak)
                } else {
                    cosine(base, base / 25_000.0, (progress - peak) / (total - peak))
                }
            }
        };
        rate as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_rejects_nonsense() {
        assert_eq!(Schedule::parse("constant").unwrap(), Schedule::Constant);
        assert_eq!(Schedule::parse("step:3:0.5").unwrap(), Schedule::Step { every: 3, gamma: 0.5 });
        assert_eq!(Schedule::parse("cosine:1.5").unwrap(), Schedule::Cosine { warmup: 1.5 });
        assert_eq!(Schedule::parse("one-cycle").unwrap(), Schedule::OneCycle);
        assert!(Schedule::parse("step:0:0.5").is_err());
        assert!(Schedule::parse("cosine:x").unwrap_err().to_string().contains("'x' is not a number"));
        assert!(Schedule::parse("linear").is_err());
    }

    #[test]
    fn rates_at_landmarks() {
        let close = |a: f32, b: f32| (a - b).abs() < 1e-7;
        assert!(close(Schedule::Step { every: 2, gamma: 0.1 }.rate(1.0, 4.5, 10.0), 0.01));
        let cos = Schedule::Cosine { warmup: 1.0 };
        assert!(close(cos.rate(1.0, 0.5, 11.0), 0.5));
        assert!(close(cos.rate(1.0, 1.0, 11.0), 1.0));
        assert!(close(cos.rate(1.0, 6.0, 11.0), 0.5));
        assert!(cos.rate(1.0, 11.0, 11.0) < 1e-7);
        let one = Schedule::OneCycle;
        assert!(close(one.rate(1.0, 0.0, 10.0), 0.04));
        assert!(close(one.rate(1.0, 3.0, 10.0), 1.0));
        assert!(close(one.rate(1.0, 10.0, 10.0), 1.0 / 25_000.0));
    }
}
