//! The `embed` example, run as part of the suite (`cargo test` also builds
//! it as an example binary).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/embed.rs"]
#[allow(dead_code)]
mod embed;

#[tokio::test]
async fn the_embed_example_asks_its_tool_and_answers() {
    let answer = embed::run().await.unwrap();
    assert_eq!(answer, "The forecast: Sunny and 21 °C in Paris.");
}
