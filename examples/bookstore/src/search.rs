//! The search box: one `Persistence::search` over the catalog's text
//! (title, author, category; MongoDB or the memory store) and "similar
//! books" by nearest neighbour over locally computed embeddings (`main`:
//! PostgreSQL, with pgvector when the server has it, or SQLite), shown on
//! `/search?q=` and as JSON on `/api/search?q=`.
//!
//! The embedding is a hashed bag of words (no model download): each
//! lower-cased word adds ±1 to one of [`EMBEDDING_DIM`] components chosen
//! by its FNV-1a hash, and the vector is scaled to unit length, so texts
//! sharing words are near by cosine distance.

use std::time::Duration;

use serde::Serialize;

use crate::model::{BookVector, EMBEDDING_DIM, Product};

/// The text source's name.
pub const TEXT_SOURCE: &str = "books";
/// The vector source's name.
pub const SIMILAR_SOURCE: &str = "similar";
/// Deadline of one search.
pub const DEADLINE: Duration = Duration::from_millis(800);

fn fnv1a(word: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in word.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The hashed bag-of-words embedding of `text`; `None` when it has no word.
pub fn embed(text: &str) -> Option<Vec<f32>> {
    let mut v = vec![0f32; EMBEDDING_DIM];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = fnv1a(&word.to_lowercase());
        let i = (h % EMBEDDING_DIM as u64) as usize;
        v[i] += if h >> 63 == 0 { 1.0 } else { -1.0 };
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm == 0.0 {
        return None;
    }
    Some(v.into_iter().map(|x| x / norm).collect())
}

/// The words of a product its embedding is made of.
pub fn book_text(p: &Product) -> String {
    format!(
        "{} {} {} {}",
        p.title,
        p.author,
        p.category,
        p.attributes.tags.join(" ")
    )
}

/// The embedding row of a product (`None`: no word to embed).
pub fn book_vector(p: &Product) -> Option<BookVector> {
    embed(&book_text(p)).map(|embedding| BookVector {
        sku: p.sku.clone(),
        embedding,
    })
}

/// One book in the answer.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// SKU.
    pub sku: String,
    /// Title.
    pub title: String,
    /// Author.
    pub author: String,
    /// The source's score (word occurrences, or cosine distance).
    pub score: f64,
}

/// What a search answered.
#[derive(Debug, Clone, Serialize)]
pub struct SearchView {
    /// The text searched.
    pub query: String,
    /// Books whose title, author or category hold every word.
    pub matches: Vec<Found>,
    /// Books nearest to the text's embedding.
    pub similar: Vec<Found>,
    /// Per source: `ok`, `timed_out`, `failed`, `skipped`.
    pub sources: Vec<(String, &'static str)>,
    /// Time the search took, milliseconds.
    pub elapsed_ms: f64,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn list(title: &str, id: &str, items: &[Found], score: &str) -> String {
    let mut out = format!("<h2>{title}</h2><ol id=\"{id}\">");
    for f in items {
        out.push_str(&format!(
            "<li data-sku=\"{}\">{} <small>by {} · {} {:.3}</small></li>",
            esc(&f.sku),
            esc(&f.title),
            esc(&f.author),
            score,
            f.score
        ));
    }
    if items.is_empty() {
        out.push_str("<li class=\"none\">nothing</li>");
    }
    out.push_str("</ol>");
    out
}

/// The search page: the box, and the answer when there is one.
pub fn page(q: &str, view: Option<&SearchView>, error: Option<&str>) -> String {
    let mut body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Search · bookstore</title>\
         <style>body{{font:15px system-ui,sans-serif;margin:2em;max-width:46em}}\
         input{{font-size:1.1em;width:24em}}small{{color:#666}}.none{{color:#999}}</style></head>\
         <body><h1>Search the bookstore</h1>\
         <form action=\"/search\" method=\"get\"><input name=\"q\" value=\"{}\" autofocus \
         placeholder=\"e.g. golden garden\"> <button>Search</button></form>",
        esc(q)
    );
    if let Some(e) = error {
        body.push_str(&format!("<p class=\"error\">{}</p>", esc(e)));
    }
    if let Some(v) = view {
        body.push_str(&list("Matching books", "matches", &v.matches, "words"));
        body.push_str(&list("Similar books", "similar", &v.similar, "distance"));
        let sources: Vec<String> = v
            .sources
            .iter()
            .map(|(s, st)| format!("{} {}", esc(s), st))
            .collect();
        body.push_str(&format!(
            "<p><small>{} · {:.1} ms</small></p>",
            sources.join(" · "),
            v.elapsed_ms
        ));
    }
    body.push_str("</body></html>");
    body
}
