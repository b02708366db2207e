//! Text search on MongoDB: `ensure_schema` tries the text index and the
//! answer decides between `$text` and the escaped `$regex` fallback;
//! `Capabilities::text_index` says which one answers. Search strings full
//! of regex metacharacters and operators are only words either way.
mod common;

use bson::{Document, doc};
use common::with_store;
use mongodb::IndexModel;
use persistence_core::conformance::corpus::{Article, articles};
use persistence_core::{Filter, Query, Repository, TextSearchExt};
use persistence_mongo::error::server_code;

#[tokio::test]
async fn text_index_is_detected_and_search_works_either_way() {
    with_store(|store| async move {
        let repo = store.repository::<Article>();
        repo.ensure_schema().await.expect("ensure_schema");
        // Ask the server itself whether it builds text indexes.
        let probe = store.database().collection::<Document>("text_probe");
        let model = IndexModel::builder().keys(doc! { "t": "text" }).build();
        let supported = match probe.create_index(model).await {
            Ok(_) => true,
            Err(e) => {
                assert_eq!(server_code(&e), Some(67), "refused otherwise: {e}");
                false
            }
        };
        let caps = repo.capabilities();
        assert_eq!(caps.text_index, supported, "Capabilities::text_index");
        assert!(!caps.native_text_search);

        repo.insert_many(&articles()).await.expect("insert");
        let hits = repo.search_text("tomatoes").await.expect("search");
        let mut ids: Vec<i64> = hits.iter().map(|(a, _)| a.id).collect();
        assert_eq!(ids[0], 11, "the article saying it twice first");
        ids.sort_unstable();
        assert_eq!(ids, [8, 9, 11]);
        // Regex metacharacters around a word: the word alone is searched.
        for q in [
            "tomato.*",
            "(tomato)+$",
            "[tomato]",
            "^tomato\\",
            "tomato|*?",
        ] {
            let hits = repo.search_text(q).await.expect(q);
            let mut ids: Vec<i64> = hits.iter().map(|(a, _)| a.id).collect();
            ids.sort_unstable();
            assert_eq!(ids, [8, 9, 11], "{q}");
        }
        // Nothing but symbols and operators: no word, nothing matches.
        for q in [".*", "$where", "{\"$ne\": null}", "(?i)", "\\"] {
            assert!(repo.search_text(q).await.expect(q).is_empty(), "{q}");
            let rows = repo
                .find(&Query::filter(Filter::matches_text(q)))
                .await
                .expect(q);
            assert!(rows.is_empty(), "{q}: find");
        }
        assert_eq!(repo.count(&Filter::all()).await.expect("count"), 30);
    })
    .await;
}
