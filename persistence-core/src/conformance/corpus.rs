//! The small English corpus of the full-text cases (`cases/fulltext.rs`):
//! 30 short articles in six topics, and 30 search strings over them.
#![allow(missing_docs)]

use serde::{Deserialize, Serialize};

use crate::Entity;

/// An article: `title` and `body` are searched as one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_articles")]
pub struct Article {
    #[entity(id)]
    pub id: i64,
    /// A filterable label.
    pub topic: String,
    #[entity(text_search)]
    pub title: String,
    #[entity(text_search)]
    pub body: Option<String>,
}

/// Searched with the `simple` language (no stop words, no stemming).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Entity)]
#[entity(name = "conf_jottings")]
pub struct Jotting {
    #[entity(id)]
    pub id: i64,
    #[entity(text_search(language = "simple"))]
    pub text: String,
}

const ROWS: [(&str, &str, &str); 30] = [
    (
        "db",
        "PostgreSQL indexes",
        "A GIN index speeds up full text search in PostgreSQL databases.",
    ),
    (
        "db",
        "SQLite full text search",
        "SQLite ships the FTS5 extension for searching documents.",
    ),
    (
        "db",
        "MongoDB text indexes",
        "MongoDB answers text queries with a text index on each collection.",
    ),
    (
        "db",
        "Choosing a database",
        "Relational databases store rows in tables; document databases store documents.",
    ),
    (
        "db",
        "Query planning",
        "The planner picks an index scan when the query is selective.",
    ),
    (
        "cooking",
        "Baking bread at home",
        "Knead the dough, let it rise, then bake the bread in a hot oven.",
    ),
    (
        "cooking",
        "Quick pasta recipes",
        "Boil the pasta, toss it with garlic, olive oil and fresh basil.",
    ),
    (
        "cooking",
        "Slow cooked beans",
        "Soak the beans overnight and cook them with onions and tomatoes.",
    ),
    (
        "cooking",
        "Tomato soup",
        "Roast tomatoes and garlic, blend them, and serve the soup with bread.",
    ),
    (
        "cooking",
        "Knife skills",
        "A sharp knife makes chopping onions faster and safer.",
    ),
    (
        "garden",
        "Growing tomatoes",
        "Tomatoes need sun, water and rich soil; tomatoes grow fast in summer.",
    ),
    (
        "garden",
        "Pruning roses",
        "Prune roses in late winter to keep the plants healthy.",
    ),
    (
        "garden",
        "Composting basics",
        "Compost turns kitchen scraps into rich soil for the garden.",
    ),
    (
        "garden",
        "Watering plants",
        "Water the garden early in the morning so the plants stay healthy.",
    ),
    (
        "garden",
        "Garden tools",
        "A good spade and a sharp pruning knife are the best tools.",
    ),
    (
        "travel",
        "Hiking in the mountains",
        "Pack water, a map and warm clothes before hiking in the mountains.",
    ),
    (
        "travel",
        "Train journeys",
        "Night trains connect many cities; the journey is slow but relaxing.",
    ),
    (
        "travel",
        "Packing light",
        "Packing a small bag makes travel easier and cheaper.",
    ),
    (
        "travel",
        "City walking tours",
        "Walking tours show a city from the street; bring comfortable shoes.",
    ),
    (
        "travel",
        "Cheap flights",
        "Book flights early and travel midweek for cheaper tickets.",
    ),
    (
        "sport",
        "Running a marathon",
        "Marathon runners train for months; running long distances builds endurance.",
    ),
    (
        "sport",
        "Swimming technique",
        "Good swimming technique saves energy in long races.",
    ),
    (
        "sport",
        "Cycling in the rain",
        "Cycling in the rain needs lights, mudguards and a waterproof jacket.",
    ),
    (
        "sport",
        "Team sports",
        "Football and basketball teach teamwork; teams train together every week.",
    ),
    (
        "sport",
        "Stretching",
        "Stretching after running keeps muscles loose and prevents injuries.",
    ),
    (
        "music",
        "Learning the piano",
        "Practice scales on the piano every day; slow practice builds speed.",
    ),
    (
        "music",
        "Guitar chords",
        "Learn three guitar chords and you can play hundreds of songs.",
    ),
    (
        "music",
        "Writing songs",
        "Songs start with a melody or a lyric; writing every day helps.",
    ),
    (
        "music",
        "Jazz history",
        "Jazz grew in New Orleans and spread to cities across America.",
    ),
    (
        "music",
        "Recording at home",
        "A quiet room and a good microphone are enough for recording songs at home.",
    ),
];

/// The corpus: ids 1..=30 in `ROWS` order; article 5 has no body (a null
/// text field is searched as empty).
pub fn articles() -> Vec<Article> {
    ROWS.iter()
        .zip(1..)
        .map(|(&(topic, title, body), id)| Article {
            id,
            topic: topic.to_string(),
            title: title.to_string(),
            body: (id != 5).then(|| body.to_string()),
        })
        .collect()
}

/// The 30 search strings every native backend answers alike.
pub const QUERIES: [&str; 30] = [
    "index",
    "indexes",
    "text search",
    "\"text search\"",
    "database",
    "databases -relational",
    "tomatoes",
    "tomato",
    "bread or pasta",
    "garlic bread",
    "running",
    "run",
    "train",
    "sharp knife",
    "\"sharp knife\"",
    "soil -compost",
    "plants healthy",
    "songs",
    "song or melody",
    "the",
    "cities",
    "cheap or cheaper",
    "writing",
    "travel -flights",
    "\"in the rain\"",
    "hiking mountains",
    "-garden",
    "jazz or piano or guitar",
    "home",
    "WATER",
];

/// Search strings that look like injections into SQL, FTS5, a regex or a
/// MongoDB query; all must be inert (answered by the word rules).
pub const HOSTILE: [&str; 12] = [
    "'; DROP TABLE conf_articles; --",
    "\") OR 1=1 --",
    "title:bread OR body:*",
    "NEAR(bread pasta) ^home",
    "bread* AND NOT pasta",
    ".* | (a+)+$",
    "{\"$where\": \"sleep(1000)\"}",
    "\\\\\" \\' %_ $1 ?",
    "\"unterminated phrase",
    "---- or or OR \"\" - \" \"",
    "garden'); DELETE FROM conf_articles WHERE ('1'='1",
    "\u{0}\u{1}\u{7f} nul",
];
