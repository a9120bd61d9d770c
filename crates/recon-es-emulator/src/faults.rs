//! Fault injection: a compact spec string (`reject=0.1,latency=20ms,only=search`), and the seeded,
//! deterministic decisions taken from it per request.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Which faults to inject. Every field is off by default; see docs/emulator.md for the grammar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultSpec {
    /// Probability of answering a whole request with 429 `es_rejected_execution_exception`.
    pub reject: f64,
    /// Answer every Nth eligible request with 429.
    pub reject_every: u64,
    /// Probability of rejecting an individual bulk item with 429.
    pub item_reject: f64,
    /// Probability of answering with 503.
    pub unavailable: f64,
    /// Answer every Nth eligible request with 503.
    pub unavailable_every: u64,
    /// Answer the first N eligible requests with 503, then recover: a storm a client rides out.
    pub unavailable_first: u64,
    /// Delay added before every eligible response.
    pub latency: Duration,
    /// Reset the connection after this many bytes of a response body.
    pub reset_after: Option<u64>,
    /// A point in time expires after this many searches through it.
    pub pit_expire_after: Option<u64>,
    /// Number of shards reported failed in otherwise successful search responses.
    pub shard_failures: u32,
    /// Limit faults to an endpoint kind (`search`, `bulk`, `doc`, `get`, `count`, `pit`, `scroll`,
    /// `mget`, `admin`) or to paths starting with a `/prefix`.
    pub only: Option<String>,
}

impl FaultSpec {
    pub fn is_empty(&self) -> bool {
        *self == FaultSpec::default()
    }

    /// Builds a spec from the admin endpoint's JSON: either `{"spec": "..."}` or one key per setting.
    pub fn from_json(v: &Value) -> Result<FaultSpec, String> {
        match v {
            Value::String(s) => s.parse(),
            Value::Object(m) => {
                if let Some(Value::String(s)) = m.get("spec") {
                    return s.parse();
                }
                let mut parts = Vec::new();
                for (k, val) in m {
                    let text = match val {
                        Value::String(s) => s.clone(),
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    parts.push(format!("{k}={text}"));
                }
                parts.join(",").parse()
            }
            Value::Null => Ok(FaultSpec::default()),
            _ => Err("fault spec must be a string or an object".into()),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "spec": self.to_string(),
            "reject": self.reject,
            "reject_every": self.reject_every,
            "item_reject": self.item_reject,
            "unavailable": self.unavailable,
            "unavailable_every": self.unavailable_every,
            "unavailable_first": self.unavailable_first,
            "latency_ms": self.latency.as_millis() as u64,
            "reset_after": self.reset_after,
            "pit_expire_after": self.pit_expire_after,
            "shard_failures": self.shard_failures,
            "only": self.only,
        })
    }
}

fn probability(key: &str, v: &str) -> Result<f64, String> {
    let p: f64 = v
        .parse()
        .map_err(|_| format!("{key}: expected a probability, got {v:?}"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("{key}: probability {p} is outside [0, 1]"));
    }
    Ok(p)
}

fn count(key: &str, v: &str) -> Result<u64, String> {
    v.parse()
        .map_err(|_| format!("{key}: expected a non-negative integer, got {v:?}"))
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<FaultSpec, String> {
        let mut spec = FaultSpec::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {part:?}"))?;
            let (k, v) = (k.trim(), v.trim());
            match k {
                "reject" => spec.reject = probability(k, v)?,
                "reject_every" => spec.reject_every = count(k, v)?,
                "item_reject" => spec.item_reject = probability(k, v)?,
                "unavailable" => spec.unavailable = probability(k, v)?,
                "unavailable_every" => spec.unavailable_every = count(k, v)?,
                "unavailable_first" => spec.unavailable_first = count(k, v)?,
                "latency" => {
                    spec.latency = match v.parse::<u64>() {
                        Ok(ms) => Duration::from_millis(ms),
                        Err(_) => humantime::parse_duration(v).map_err(|e| format!("latency: {e}"))?,
                    }
                }
                "reset_after" => spec.reset_after = Some(count(k, v)?),
                "pit_expire_after" => spec.pit_expire_after = Some(count(k, v)?),
                "shard_failures" => spec.shard_failures = count(k, v)? as u32,
                "only" => {
                    spec.only = if v.is_empty() || v == "all" {
                        None
                    } else {
                        Some(v.to_string())
                    }
                }
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        Ok(spec)
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.reject > 0.0 {
            parts.push(format!("reject={}", self.reject));
        }
        if self.reject_every > 0 {
            parts.push(format!("reject_every={}", self.reject_every));
        }
        if self.item_reject > 0.0 {
            parts.push(format!("item_reject={}", self.item_reject));
        }
        if self.unavailable > 0.0 {
            parts.push(format!("unavailable={}", self.unavailable));
        }
        if self.unavailable_every > 0 {
            parts.push(format!("unavailable_every={}", self.unavailable_every));
        }
        if self.unavailable_first > 0 {
            parts.push(format!("unavailable_first={}", self.unavailable_first));
        }
        if !self.latency.is_zero() {
            parts.push(format!("latency={}ms", self.latency.as_millis()));
        }
        if let Some(n) = self.reset_after {
            parts.push(format!("reset_after={n}"));
        }
        if let Some(n) = self.pit_expire_after {
            parts.push(format!("pit_expire_after={n}"));
        }
        if self.shard_failures > 0 {
            parts.push(format!("shard_failures={}", self.shard_failures));
        }
        if let Some(o) = &self.only {
            parts.push(format!("only={o}"));
        }
        f.write_str(&parts.join(","))
    }
}

/// What to do to one request.
#[derive(Debug, Default, Clone)]
pub struct RequestFaults {
    pub latency: Duration,
    pub status: Option<u16>,
    pub reset_after: Option<u64>,
    pub item_reject: f64,
    pub shard_failures: u32,
}

/// The live fault configuration plus the seeded random stream and counters behind `*_every`.
pub struct FaultState {
    pub spec: FaultSpec,
    rng: StdRng,
    seen: u64,
}

impl FaultState {
    pub fn new(spec: FaultSpec, seed: u64) -> FaultState {
        FaultState {
            spec,
            rng: StdRng::seed_from_u64(seed),
            seen: 0,
        }
    }

    pub fn set(&mut self, spec: FaultSpec) {
        self.spec = spec;
        self.seen = 0;
    }

    pub fn applies(&self, kind: &str, path: &str) -> bool {
        match &self.spec.only {
            None => kind != "emulator",
            Some(o) if o.starts_with('/') => path.starts_with(o.as_str()),
            Some(o) => o.split('|').any(|k| k == kind),
        }
    }

    pub fn decide(&mut self, kind: &str, path: &str) -> RequestFaults {
        if self.spec.is_empty() || !self.applies(kind, path) {
            return RequestFaults::default();
        }
        self.seen += 1;
        let n = self.seen;
        let s = &self.spec;
        let mut status = None;
        if s.reject_every > 0 && n % s.reject_every == 0 {
            status = Some(429);
        } else if (s.unavailable_every > 0 && n % s.unavailable_every == 0) || n <= s.unavailable_first {
            status = Some(503);
        }
        let (reject, unavailable) = (s.reject, s.unavailable);
        if status.is_none() && reject > 0.0 && self.rng.gen_bool(reject) {
            status = Some(429);
        }
        if status.is_none() && unavailable > 0.0 && self.rng.gen_bool(unavailable) {
            status = Some(503);
        }
        let s = &self.spec;
        RequestFaults {
            latency: s.latency,
            status,
            reset_after: s.reset_after,
            item_reject: if kind == "bulk" { s.item_reject } else { 0.0 },
            shard_failures: if matches!(kind, "search" | "scroll" | "count") {
                s.shard_failures
            } else {
                0
            },
        }
    }

    pub fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen_bool(p.min(1.0))
    }

    pub fn pit_expire_after(&self) -> Option<u64> {
        self.spec.pit_expire_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips() {
        let text = "reject=0.1,reject_every=5,item_reject=0.2,unavailable_every=7,latency=20ms,reset_after=4096,pit_expire_after=3,shard_failures=1,only=search";
        let spec: FaultSpec = text.parse().unwrap();
        assert_eq!(spec.latency, Duration::from_millis(20));
        assert_eq!(spec.to_string(), text);
        assert_eq!(spec.to_string().parse::<FaultSpec>().unwrap(), spec);
        assert!("reject=2".parse::<FaultSpec>().is_err());
        assert!("bogus=1".parse::<FaultSpec>().is_err());
    }

    #[test]
    fn every_nth_is_deterministic() {
        let mut st = FaultState::new("reject_every=3".parse().unwrap(), 7);
        let got: Vec<_> = (0..6).map(|_| st.decide("search", "/_search").status).collect();
        assert_eq!(got, vec![None, None, Some(429), None, None, Some(429)]);
    }

    #[test]
    fn a_storm_of_the_first_n_passes() {
        let mut st = FaultState::new("unavailable_first=2,only=search".parse().unwrap(), 7);
        assert_eq!(st.spec.to_string(), "unavailable_first=2,only=search");
        let got: Vec<_> = (0..4).map(|_| st.decide("search", "/_search").status).collect();
        assert_eq!(got, vec![Some(503), Some(503), None, None]);
        assert_eq!(st.decide("bulk", "/_bulk").status, None, "only search requests count");
    }
}
