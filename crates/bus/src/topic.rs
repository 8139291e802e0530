//! Topic names. Every name has a configurable prefix so several environments
//! can share one broker.

use herald_domain::Channel;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The topics Herald uses, under one prefix (default `herald.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics::new("herald.")
    }
}

impl Topics {
    pub fn new(prefix: impl Into<String>) -> Self {
        Topics {
            prefix: prefix.into(),
        }
    }

    pub fn events(&self) -> Topic {
        Topic(format!("{}events", self.prefix))
    }

    pub fn deliveries(&self, channel: Channel) -> Topic {
        Topic(format!("{}deliveries.{}", self.prefix, channel.as_str()))
    }

    pub fn receipts(&self) -> Topic {
        Topic(format!("{}receipts", self.prefix))
    }

    pub fn dlq(&self) -> Topic {
        Topic(format!("{}dlq", self.prefix))
    }

    /// Every topic, for creating them on a broker.
    pub fn all(&self) -> Vec<Topic> {
        let mut all = vec![self.events(), self.receipts(), self.dlq()];
        all.extend(Channel::ALL.into_iter().map(|c| self.deliveries(c)));
        all
    }

    /// The topic with this full name, if it is one of ours.
    pub fn by_name(&self, name: &str) -> Option<Topic> {
        self.all().into_iter().find(|t| t.name() == name)
    }

    /// The topic for a name without the prefix (`events`, `receipts`,
    /// `deliveries.sms`…). The outbox stores these, so rows written under one
    /// prefix are published under the prefix of the relay that reads them.
    pub fn resolve(&self, logical: &str) -> Option<Topic> {
        self.by_name(&format!("{}{logical}", self.prefix))
    }

    /// The name without the prefix, which [`Topics::resolve`] takes back.
    pub fn logical<'t>(&self, topic: &'t Topic) -> Option<&'t str> {
        topic.name().strip_prefix(self.prefix.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logical_name_resolves_back_to_its_topic() {
        let t = Topics::new("staging.herald.");
        for topic in t.all() {
            let logical = t.logical(&topic).unwrap();
            assert_eq!(t.resolve(logical), Some(topic.clone()));
        }
        assert_eq!(t.logical(&Topics::new("other.").events()), None);
    }

    #[test]
    fn topic_names_carry_the_prefix() {
        let t = Topics::new("staging.herald.");
        assert_eq!(t.events().name(), "staging.herald.events");
        assert_eq!(
            t.deliveries(Channel::InApp).name(),
            "staging.herald.deliveries.in_app"
        );
        assert_eq!(t.all().len(), 7);
        assert_eq!(t.by_name("staging.herald.dlq"), Some(t.dlq()));
        assert_eq!(t.by_name("herald.dlq"), None);
        assert_eq!(t.resolve("receipts"), Some(t.receipts()));
        assert_eq!(
            t.resolve("deliveries.sms"),
            Some(t.deliveries(Channel::Sms))
        );
        assert_eq!(t.resolve("nope"), None);
    }
}
