//! `Persistence::register_search` / `search`: the sources and the
//! concurrent fan-out with a deadline (rules in [`crate::search`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use persistence_core::layer::BoxFuture;
use persistence_core::layer::metric_names as names;
use persistence_core::text::rank_substring_in;
use persistence_core::{
    Entity, Error, Filter, NearestQuery, Query, Result, SharedRepository, TextQuery,
};
use tokio::task::JoinSet;

use crate::Persistence;
use crate::database::Database;
use crate::search::{
    Hit, MAX_LIMIT, SearchRequest, SearchResults, Searchable, SkipReason, SourceHits, SourceStatus,
    TEXT_CANDIDATES, fuse, text_rule,
};

/// What a source is asked.
pub(crate) enum Ask {
    Vector(Arc<Vec<f32>>, usize),
    Text(Arc<str>, Arc<Vec<String>>, usize),
}

type Run = Arc<dyn Fn(Ask) -> BoxFuture<'static, Result<Vec<Hit>>> + Send + Sync>;

/// A registered source.
pub(crate) struct Source {
    name: String,
    database: String,
    entity: &'static str,
    vector: bool,
    text: bool,
    timeout: Option<Duration>,
    limit: usize,
    db: Arc<Database>,
    run: Run,
}

fn hits<E: Entity>(rows: impl IntoIterator<Item = (E, f64)>) -> Result<Vec<Hit>> {
    rows.into_iter()
        .enumerate()
        .map(|(i, (e, score))| {
            let id = serde_json::to_value(e.id())
                .map_err(|x| Error::decode(format!("search: id of {}: {x}", E::meta().name)))?;
            let document = serde_json::to_value(&e)
                .map_err(|x| Error::decode(format!("search: {}: {x}", E::meta().name)))?;
            Ok(Hit {
                id,
                rank: i + 1,
                score,
                document,
            })
        })
        .collect()
}

async fn by_vector<E: Entity>(
    repo: &SharedRepository<E>,
    field: &str,
    v: &[f32],
    k: usize,
) -> Result<Vec<Hit>> {
    let rows = repo
        .find_nearest(&NearestQuery::new(field, v.to_vec(), k))
        .await?;
    hits(rows)
}

async fn by_text<E: Entity>(
    repo: &SharedRepository<E>,
    fields: &[String],
    words: &[String],
    k: usize,
) -> Result<Vec<Hit>> {
    // Every word in one of the fields.
    let mut filter: Option<Filter> = None;
    for w in words {
        let mut any: Option<Filter> = None;
        for f in fields {
            let c = Filter::field(f.clone()).contains_ignore_case(w);
            any = Some(match any {
                None => c,
                Some(a) => a.or(c),
            });
        }
        if let Some(any) = any {
            filter = Some(match filter {
                None => any,
                Some(f) => f.and(any),
            });
        }
    }
    let candidates = (k * TEXT_CANDIDATES).min(MAX_LIMIT * TEXT_CANDIDATES) as u64;
    let rows = repo
        .find(&Query::filter(filter.unwrap_or_else(Filter::all)).limit(candidates))
        .await?;
    let meta = E::meta();
    let at: Vec<usize> = fields
        .iter()
        .filter_map(|f| meta.fields.iter().position(|x| x.name == *f))
        .collect();
    hits(rank_substring_in(rows, &text_rule(words), &at, k)?)
}

impl Persistence {
    /// Register a source for [`search`](Persistence::search): its
    /// repository (with the database's layers and cache) is built now, so
    /// a database that cannot be reached fails here, not in a search.
    /// Names are unique (`InvalidInput` for a second one).
    pub async fn register_search<E: Entity>(&self, source: Searchable<E>) -> Result<()> {
        source.checked()?;
        let name = source.source_name();
        let db = self.database(&source.database)?.clone();
        let repo = self.repo_in::<E>(&source.database).await?;
        let vector = source.vector.clone();
        let fields = Arc::new(source.text.clone());
        let full_text = source.full_text;
        let run: Run = Arc::new(move |ask| {
            let repo = repo.clone();
            let vector = vector.clone();
            let fields = fields.clone();
            Box::pin(async move {
                match (ask, vector) {
                    (Ask::Vector(v, k), Some(field)) => by_vector(&repo, &field, &v, k).await,
                    (Ask::Text(text, _, k), _) if full_text => {
                        hits(repo.find_text(&TextQuery::new(&*text).limit(k)).await?)
                    }
                    (Ask::Text(_, words, k), _) => by_text(&repo, &fields, &words, k).await,
                    (Ask::Vector(..), None) => Ok(Vec::new()),
                }
            })
        });
        let mut list = self.searches.write().unwrap_or_else(|p| p.into_inner());
        if list.iter().any(|s| s.name == name) {
            return Err(Error::invalid_input(format!(
                "search source `{name}` is already registered"
            )));
        }
        list.push(Arc::new(Source {
            name,
            database: source.database.clone(),
            entity: E::meta().name,
            vector: source.vector.is_some(),
            text: !source.text.is_empty() || source.full_text,
            timeout: source.timeout,
            limit: source.limit,
            db,
            run,
        }));
        Ok(())
    }

    /// The registered search sources' names, in registration order.
    pub fn search_sources(&self) -> Vec<String> {
        let list = self.searches.read().unwrap_or_else(|p| p.into_inner());
        list.iter().map(|s| s.name.clone()).collect()
    }

    /// Ask every registered source (or those the request names)
    /// concurrently and return by the request's deadline with what arrived
    /// (see [`crate::search`]). Errors only for a bad request (`InvalidInput`:
    /// no text nor vector, an empty or over-long text, a limit out of
    /// range, an unknown source name); a source that fails or is late is a
    /// status in the results.
    pub async fn search(&self, request: &SearchRequest) -> Result<SearchResults> {
        request.check()?;
        let started = Instant::now();
        let sources: Vec<Arc<Source>> = {
            let list = self.searches.read().unwrap_or_else(|p| p.into_inner());
            match &request.sources {
                None => list.clone(),
                Some(names) => {
                    let mut picked = Vec::new();
                    for n in names {
                        match list.iter().find(|s| &s.name == n) {
                            Some(s) => picked.push(s.clone()),
                            None => {
                                return Err(Error::invalid_input(format!(
                                    "no search source `{}`",
                                    n.chars().take(128).collect::<String>()
                                )));
                            }
                        }
                    }
                    picked
                }
            }
        };
        let words = request.words()?.map(Arc::new);
        let text: Option<Arc<str>> = request.text.as_deref().map(Arc::from);
        let vector = request.vector.clone().map(Arc::new);
        let deadline = tokio::time::Instant::now() + request.deadline;

        let mut results: Vec<SourceHits> = Vec::with_capacity(sources.len());
        let mut tasks = JoinSet::new();
        for (i, s) in sources.iter().enumerate() {
            let limit = request.limits.get(&s.name).copied().unwrap_or(s.limit);
            let (mode, ask) = match (&vector, &words, &text) {
                (Some(v), _, _) if s.vector => ("vector", Some(Ask::Vector(v.clone(), limit))),
                (_, Some(w), Some(t)) if s.text => {
                    ("text", Some(Ask::Text(t.clone(), w.clone(), limit)))
                }
                _ => ("", None),
            };
            let mut out = SourceHits {
                source: s.name.clone(),
                database: s.database.clone(),
                entity: s.entity,
                mode: None,
                status: SourceStatus::Skipped(SkipReason::NotApplicable),
                error: None,
                hits: Vec::new(),
                elapsed_ms: 0.0,
            };
            if let Some(ask) = ask {
                if s.db.breaker.is_open() {
                    out.status = SourceStatus::Skipped(SkipReason::BreakerOpen);
                } else {
                    out.mode = Some(mode);
                    let until = match s.timeout {
                        Some(t) => deadline.min(tokio::time::Instant::now() + t),
                        None => deadline,
                    };
                    let run = s.run.clone();
                    tasks.spawn(async move {
                        let t0 = Instant::now();
                        let r = tokio::time::timeout_at(until, run(ask)).await;
                        (i, r, t0.elapsed())
                    });
                }
            }
            results.push(out);
        }
        // Every task ends by its own timeout (within the deadline); a
        // panicking source is reported as failed, not propagated.
        while let Some(joined) = tasks.join_next().await {
            let Ok((i, r, took)) = joined else {
                continue;
            };
            let out = &mut results[i];
            out.elapsed_ms = took.as_secs_f64() * 1e3;
            match r {
                Ok(Ok(hits)) => {
                    out.status = SourceStatus::Ok;
                    out.hits = hits;
                }
                Ok(Err(e)) => {
                    out.status = SourceStatus::Failed(e.kind().clone());
                    out.error = Some(e.to_string());
                }
                Err(_) => out.status = SourceStatus::TimedOut,
            }
        }
        for out in &mut results {
            if out.mode.is_some() && out.status == SourceStatus::Skipped(SkipReason::NotApplicable)
            {
                // Its task did not report (it panicked).
                out.status = SourceStatus::Failed(persistence_core::ErrorKind::Backend);
                out.error = Some("the search source's task panicked".into());
            }
            metrics::histogram!(names::SEARCH_DURATION,
                names::LABEL_SOURCE => out.source.clone(),
                names::LABEL_STATUS => out.status.label())
            .record(out.elapsed_ms / 1e3);
        }
        let merged = fuse(&results);
        Ok(SearchResults {
            sources: results,
            merged,
            elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }
}
