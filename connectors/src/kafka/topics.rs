//! Creating a topic a deployment needs and that may not exist yet: a
//! repartition topic (see `weir_dsl::repartition`), with as many
//! partitions as the largest of the topics it repartitions.
//!
//! Both ends call [`ensure`] before they use the topic (the output before
//! its first write, the source before it subscribes), so whichever starts
//! first creates it and neither relies on the broker creating topics on
//! first use (which would pick its default partition count).

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;
use weir_engine::{EngineError, Result};

/// How long creating a topic may take before the connector gives up.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Makes sure `topic` exists, creating it with as many partitions as the
/// largest of `like` has; returns its partition count.
pub async fn ensure(
    name: &str,
    client: &ClientConfig,
    topic: &str,
    like: &[String],
) -> Result<i32> {
    let fail = |what: String| EngineError::connector(name, what);
    let admin: Arc<AdminClient<DefaultClientContext>> = Arc::new(
        client
            .create()
            .map_err(|e| fail(format!("cannot create a Kafka admin client: {e}")))?,
    );
    let counts = partitions(name, admin.clone()).await?;
    if let Some(n) = counts.iter().find(|(t, _)| t == topic).map(|(_, n)| *n) {
        return Ok(n);
    }
    let n = counts
        .iter()
        .filter(|(t, _)| like.contains(t))
        .map(|(_, n)| *n)
        .max()
        .ok_or_else(|| {
            fail(format!(
                "cannot create topic `{topic}`: none of {like:?} exists to take its partition count from"
            ))
        })?;
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    // The broker's default replication factor (-1), as a topic made by
    // hand would get.
    let new = NewTopic::new(topic, n, TopicReplication::Fixed(-1));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| fail(format!("cannot create topic `{topic}`: {e}")))?;
    for r in results {
        match r {
            Ok(_) => info!(connector = %name, topic, partitions = n, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(fail(format!("cannot create topic `{topic}`: {code}"))),
        }
    }
    Ok(n)
}

/// Every topic of the cluster with its partition count (all topics: asking
/// for one by name could make a broker create it with its defaults).
async fn partitions(
    name: &str,
    admin: Arc<AdminClient<DefaultClientContext>>,
) -> Result<Vec<(String, i32)>> {
    let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, TIMEOUT))
        .await
        .map_err(|e| EngineError::Task(format!("kafka metadata: {e}")))?
        .map_err(|e| {
            EngineError::connector(name, format!("cannot read the cluster's topics: {e}"))
        })?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}
