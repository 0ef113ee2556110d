//! A source's `kafka` block (spec `import.md` §6): which topic a source consumes, from
//! where, and how each message's bytes are read. Pure data and validation here; the
//! daemon's consumer (`src/kafka/`) does the IO.

use serde::{Deserialize, Serialize};

/// Most messages one consumer batch holds before it is committed.
pub const MAX_BATCH_MESSAGES: u32 = 100_000;
/// Longest wait for a batch to fill.
pub const MAX_BATCH_WAIT_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSpec {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    pub topic: String,
    /// `"all"` (default) or a list of partition numbers.
    #[serde(default)]
    pub partitions: Partitions,
    /// `earliest` (default), `latest` or an RFC 3339 time: where a partition without a
    /// stored offset starts.
    #[serde(default = "earliest")]
    pub start: String,
    #[serde(default)]
    pub payload: Payload,
    /// Stores the message key as this tag on every point of the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_tag: Option<String>,
    #[serde(default = "default_batch_messages")]
    pub max_batch_messages: u32,
    #[serde(default = "default_batch_wait")]
    pub max_batch_wait_ms: u64,
    /// Offsets are also committed to Kafka under this group (lag dashboards only; no
    /// group membership, kairosd's own offsets decide where it resumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Security::is_plain")]
    pub security: Security,
}

fn earliest() -> String {
    "earliest".to_owned()
}
fn default_batch_messages() -> u32 {
    10_000
}
fn default_batch_wait() -> u64 {
    100
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Partitions {
    #[default]
    All,
    List(Vec<i32>),
}

impl Serialize for Partitions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Partitions::All => s.serialize_str("all"),
            Partitions::List(l) => l.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Partitions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<i64>),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("kafka.partitions must be \"all\" or a list of partition numbers"))?
        {
            Raw::Word(w) if w == "all" => Ok(Partitions::All),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "kafka.partitions: {w:?} is neither \"all\" nor a list of partition numbers"
            ))),
            Raw::List(l) => l
                .into_iter()
                .map(|p| {
                    i32::try_from(p).ok().filter(|p| *p >= 0).ok_or_else(|| {
                        serde::de::Error::custom(format!("kafka.partitions: {p} is not a partition number"))
                    })
                })
                .collect::<Result<Vec<i32>, D::Error>>()
                .map(Partitions::List),
        }
    }
}

/// How one message's bytes are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Payload {
    /// One or more JSON rows, mapped by the source.
    #[default]
    Ndjson,
    /// CSV rows without a header (the source's `columns` name them), mapped by the source.
    Csv,
    /// A KairosDB `POST /api/v1/datapoints` body.
    Kairosdb,
    /// Telnet `put` lines.
    Telnet,
    /// Graphite plaintext lines (`path value [timestamp]`).
    Graphite,
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let word = String::deserialize(d)?;
        [
            Payload::Ndjson,
            Payload::Csv,
            Payload::Kairosdb,
            Payload::Telnet,
            Payload::Graphite,
        ]
        .into_iter()
        .find(|p| p.as_str() == word)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "kafka.payload {word:?} is not ndjson, csv, kairosdb, telnet or graphite"
            ))
        })
    }
}

impl Payload {
    pub fn as_str(self) -> &'static str {
        match self {
            Payload::Ndjson => "ndjson",
            Payload::Csv => "csv",
            Payload::Kairosdb => "kairosdb",
            Payload::Telnet => "telnet",
            Payload::Graphite => "graphite",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// `plaintext` (default), `ssl`, `sasl_plaintext`, `sasl_ssl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding the password (never the password itself, which would show in
    /// `GET /api/v1/sources`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
}

impl Security {
    pub fn is_plain(&self) -> bool {
        *self == Security::default()
    }
}

/// Where a partition without a stored offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    /// The first message at or after this time (ms).
    Time(i64),
}

impl KafkaSpec {
    pub fn start(&self) -> Result<Start, String> {
        match self.start.as_str() {
            "earliest" => Ok(Start::Earliest),
            "latest" => Ok(Start::Latest),
            s => s
                .parse::<jiff::Timestamp>()
                .map(|t| Start::Time(t.as_millisecond()))
                .map_err(|_| {
                    format!(
                        "kafka.start: {s:?} is not earliest, latest or an RFC 3339 time such as \
                         2024-01-01T00:00:00Z"
                    )
                }),
        }
    }

    /// Every problem of the block, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut e = Vec::new();
        let brokers: Vec<&str> = self.brokers.split(',').map(str::trim).collect();
        if self.brokers.trim().is_empty() {
            e.push("kafka.brokers may not be empty: host:port[,host:port...]".to_owned());
        } else {
            for b in &brokers {
                let ok = b
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !ok {
                    e.push(format!("kafka.brokers: {b:?} is not host:port"));
                }
            }
        }
        // Kafka's own rule for topic names.
        if self.topic.is_empty()
            || self.topic.len() > 249
            || self.topic == "."
            || self.topic == ".."
            || !self
                .topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            e.push(format!(
                "kafka.topic {:?} must be 1 to 249 characters of A-Z a-z 0-9 . _ -",
                self.topic
            ));
        }
        if let Partitions::List(l) = &self.partitions {
            if l.is_empty() {
                e.push("kafka.partitions: the list may not be empty (use \"all\")".to_owned());
            }
            let mut seen = std::collections::BTreeSet::new();
            for p in l {
                if !seen.insert(p) {
                    e.push(format!("kafka.partitions: {p} is listed twice"));
                }
            }
        }
        if let Err(msg) = self.start() {
            e.push(msg);
        }
        if let Some(k) = &self.key_tag {
            if k.is_empty() {
                e.push("kafka.key_tag may not be empty (leave it out to ignore message keys)".to_owned());
            }
        }
        if self.max_batch_messages == 0 || self.max_batch_messages > MAX_BATCH_MESSAGES {
            e.push(format!(
                "kafka.max_batch_messages must be 1 to {MAX_BATCH_MESSAGES}, not {}",
                self.max_batch_messages
            ));
        }
        if self.max_batch_wait_ms > MAX_BATCH_WAIT_MS {
            e.push(format!(
                "kafka.max_batch_wait_ms must be 0 to {MAX_BATCH_WAIT_MS}, not {}",
                self.max_batch_wait_ms
            ));
        }
        if let Some(g) = &self.group_id {
            if g.is_empty() {
                e.push("kafka.group_id may not be empty (leave it out to commit nothing to Kafka)".to_owned());
            }
        }
        let s = &self.security;
        if let Some(p) = &s.protocol {
            if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&p.as_str()) {
                e.push(format!(
                    "kafka.security.protocol {p:?} is not plaintext, ssl, sasl_plaintext or sasl_ssl"
                ));
            }
        }
        if let Some(m) = &s.sasl_mechanism {
            if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER"].contains(&m.as_str()) {
                e.push(format!(
                    "kafka.security.sasl_mechanism {m:?} is not PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, GSSAPI or \
                     OAUTHBEARER"
                ));
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<KafkaSpec, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_round_trip() {
        let s = spec(r#"{"brokers":"127.0.0.1:9092","topic":"t"}"#).unwrap();
        assert_eq!(s.partitions, Partitions::All);
        assert_eq!(s.start().unwrap(), Start::Earliest);
        assert_eq!(s.payload, Payload::Ndjson);
        assert!(s.problems().is_empty());
        let back: KafkaSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let s = spec(r#"{"brokers":"a:1","topic":"t","partitions":[0,2],"start":"2024-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(s.partitions, Partitions::List(vec![0, 2]));
        assert_eq!(s.start().unwrap(), Start::Time(1_704_067_200_000));
    }

    #[test]
    fn every_problem_is_named() {
        assert!(spec(r#"{"brokers":"a:1","topic":"t","partitions":"some"}"#)
            .unwrap_err()
            .contains("kafka.partitions"));
        assert!(spec(r#"{"brokers":"a:1","topic":"t","payload":"xml"}"#).is_err());
        let s = spec(
            r#"{"brokers":"nohost,b:0","topic":"a b","partitions":[1,1],"start":"yesterday",
                "max_batch_messages":0,"security":{"protocol":"tls"}}"#,
        )
        .unwrap();
        let p = s.problems().join("\n");
        for needle in [
            "\"nohost\" is not host:port",
            "\"b:0\"",
            "kafka.topic",
            "1 is listed twice",
            "kafka.start",
            "max_batch_messages",
            "security.protocol",
        ] {
            assert!(p.contains(needle), "{needle} missing from {p}");
        }
    }
}
