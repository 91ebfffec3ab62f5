//! Sends a few events for one viewer and prints what Marquee recommends next.
//!
//! Start a server first (`marquee demo`, or `marquee serve`), then:
//! `cargo run -p marquee-client --example quickstart` (`MARQUEE_URL` and `MARQUEE_API_KEY`
//! point it elsewhere).

use std::time::Duration;

use marquee_client::{Client, RecommendationOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("MARQUEE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let mut builder = Client::builder(url).on_error(|problem| eprintln!("delivery: {problem}"));
    if let Ok(key) = std::env::var("MARQUEE_API_KEY") {
        builder = builder.api_key(key);
    }
    let client = builder.build()?;

    // Items of the catalogue `marquee demo` generates (m0 to m2999).
    client.rate("quickstart-viewer", "m7", 5.0)?;
    client.watch("quickstart-viewer", "m19", 0.9)?;
    client.like("quickstart-viewer", "m42")?;
    client.flush(Duration::from_secs(5)).await?;

    // The events are durable once flushed; the model applies them within milliseconds.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let picks = client
        .recommendations(
            "quickstart-viewer",
            &RecommendationOptions::default().count(5),
        )
        .await?;
    println!("strategy: {}", picks.strategy);
    for pick in picks.items {
        let title = pick.title.unwrap_or_default();
        println!("{:>8}  {:.3}  {title}", pick.item_id, pick.score);
    }
    client.close(Duration::from_secs(5)).await?;
    Ok(())
}
