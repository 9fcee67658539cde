//! `type: stdin`: lines from standard input until it ends (then the source
//! ends; with only stdin sources the agent exits once everything is shipped).

use super::multiline::Multiline;
use super::SourceCtx;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const BATCH: usize = 2000;

pub async fn run(mut ctx: SourceCtx) -> Result<(), crate::ShipError> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut multiline = ctx.cfg.multiline.as_ref().and_then(Multiline::new);
    let mut batch: Vec<String> = Vec::with_capacity(BATCH);
    let mut acks = Vec::new();
    loop {
        let next = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            l = tokio::time::timeout(Duration::from_millis(100), lines.next_line()) => l,
        };
        let idle = next.is_err();
        match next {
            Ok(Ok(Some(line))) => match multiline.as_mut() {
                Some(m) => batch.extend(m.push(&line)),
                None => batch.push(line),
            },
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(crate::ShipError::io("cannot read stdin", e)),
            Err(_) => batch.extend(multiline.as_mut().and_then(Multiline::stale)),
        }
        if batch.len() >= BATCH || (!batch.is_empty() && idle) {
            acks.extend(ctx.send_lines(batch.iter().map(String::as_str), true).await);
            batch.clear();
        }
    }
    batch.extend(multiline.as_mut().and_then(Multiline::flush));
    if !batch.is_empty() {
        acks.extend(ctx.send_lines(batch.iter().map(String::as_str), true).await);
    }
    // Standard input cannot be read again: wait until it is all shipped.
    for a in acks {
        let _ = a.await;
    }
    Ok(())
}
