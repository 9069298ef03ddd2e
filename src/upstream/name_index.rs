//! What a store's account names, remembered between creates. Before creating an object the
//! operator looks for another of that name, so a name taken by another namespace's key or
//! by hand is reported as `NameTaken` instead of becoming a second object of that name.
//! Akamai's API cannot filter clients by name, so that look was a list of every client per
//! create: at 2,500 clients it was the superlinear term of a large create wave.
//!
//! A [`Lookup::Recent`] answer comes from a list at most [`FRESH_FOR`] old with this
//! process's own creates, changes and deletes applied since; concurrent lookups share one
//! list. It is for a create that no earlier attempt can have made already: the name it
//! guards is the courtesy check above, which a list-then-create never made atomic anyway
//! (two creates racing through the same list both see the name free). An object of that
//! name made by hand within the window is missed, and the operator creates its own next to
//! it, marked as its own; nothing of anyone else's is touched. Crash recovery, which must
//! see what an interrupted attempt created, asks for [`Lookup::Now`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a list answers [`Lookup::Recent`] lookups.
pub const FRESH_FOR: Duration = Duration::from_secs(10);

/// How current a lookup by name must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A list at most [`FRESH_FOR`] old plus this process's own creates and deletes: for a
    /// create no earlier attempt can have made.
    Recent,
    /// A list taken now: an earlier, interrupted attempt may have created the object.
    Now,
}

/// An object as a list shows it: its name and id.
pub trait Listed: Clone {
    fn name(&self) -> Option<&str>;
    fn id(&self) -> String;
}

/// The objects of one store's account by name.
pub struct NameIndex<T> {
    state: Mutex<State<T>>,
    /// Held while a list is in flight, so lookups that find no fresh list wait for it.
    listing: tokio::sync::Mutex<()>,
}

struct State<T> {
    /// The last list, by name, and when it was started.
    listed: Option<(Instant, HashMap<String, Vec<T>>)>,
    /// This process's creates and deletes since the list in flight started, which that list
    /// may not show; `None` while no list is in flight.
    since_list: Option<Vec<Change<T>>>,
}

#[derive(Clone)]
enum Change<T> {
    Seen(T),
    Deleted(String),
}

impl<T> Default for NameIndex<T> {
    fn default() -> Self {
        NameIndex {
            state: Mutex::new(State {
                listed: None,
                since_list: None,
            }),
            listing: tokio::sync::Mutex::new(()),
        }
    }
}

/// Names only how many names it knows: the objects are the account's, not the reader's.
impl<T> std::fmt::Debug for NameIndex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let names = state.listed.as_ref().map(|(_, by_name)| by_name.len());
        f.debug_struct("NameIndex").field("names", &names).finish()
    }
}

impl<T: Listed> NameIndex<T> {
    /// The objects named `name`. `list` lists every object of the account; it is called
    /// for [`Lookup::Now`], and for [`Lookup::Recent`] when the last list is older than
    /// [`FRESH_FOR`].
    pub async fn named<E, F, Fut>(&self, name: &str, lookup: Lookup, list: F) -> Result<Vec<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        if lookup == Lookup::Recent
            && let Some(found) = self.recent(name)
        {
            return Ok(found);
        }
        let _listing = self.listing.lock().await;
        // Another lookup may have listed while this one waited.
        if lookup == Lookup::Recent
            && let Some(found) = self.recent(name)
        {
            return Ok(found);
        }
        let started = Instant::now();
        self.state().since_list = Some(Vec::new());
        let listed = list().await;
        let mut state = self.state();
        let since_list = state.since_list.take().unwrap_or_default();
        let mut by_name: HashMap<String, Vec<T>> = HashMap::new();
        for object in listed? {
            if let Some(name) = object.name() {
                by_name.entry(name.to_owned()).or_default().push(object);
            }
        }
        for change in since_list {
            apply(&mut by_name, change);
        }
        let found = by_name.get(name).cloned().unwrap_or_default();
        state.listed = Some((started, by_name));
        Ok(found)
    }

    /// Records an object as this process created or changed it (renamed, perhaps).
    pub fn seen(&self, object: T) {
        self.changed(Change::Seen(object));
    }

    /// Records that this process deleted the object with `id`.
    pub fn deleted(&self, id: &str) {
        self.changed(Change::Deleted(id.to_owned()));
    }

    fn changed(&self, change: Change<T>) {
        let mut state = self.state();
        if let Some(since_list) = &mut state.since_list {
            since_list.push(change.clone());
        }
        if let Some((_, by_name)) = &mut state.listed {
            apply(by_name, change);
        }
    }

    fn recent(&self, name: &str) -> Option<Vec<T>> {
        let state = self.state();
        let (started, by_name) = state.listed.as_ref()?;
        (started.elapsed() < FRESH_FOR).then(|| by_name.get(name).cloned().unwrap_or_default())
    }

    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn apply<T: Listed>(by_name: &mut HashMap<String, Vec<T>>, change: Change<T>) {
    let id = match &change {
        Change::Seen(object) => object.id(),
        Change::Deleted(id) => id.clone(),
    };
    for named in by_name.values_mut() {
        named.retain(|known| known.id() != id);
    }
    if let Change::Seen(object) = change
        && let Some(name) = object.name()
    {
        by_name.entry(name.to_owned()).or_default().push(object);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Object(&'static str, &'static str);

    impl Listed for Object {
        fn name(&self) -> Option<&str> {
            Some(self.0)
        }
        fn id(&self) -> String {
            self.1.to_owned()
        }
    }

    async fn listed(objects: &[Object], lists: &AtomicUsize) -> Result<Vec<Object>, ()> {
        lists.fetch_add(1, Ordering::SeqCst);
        Ok(objects.to_vec())
    }

    #[tokio::test]
    async fn recent_lookups_share_one_list_and_see_own_creates_and_deletes() {
        let index = NameIndex::default();
        let lists = AtomicUsize::new(0);
        let account = [Object("a", "1"), Object("b", "2")];
        let found = index
            .named("a", Lookup::Recent, || listed(&account, &lists))
            .await;
        assert_eq!(found, Ok(vec![Object("a", "1")]));
        index.seen(Object("c", "3"));
        index.deleted("2");
        let c = index
            .named("c", Lookup::Recent, || listed(&account, &lists))
            .await;
        let b = index
            .named("b", Lookup::Recent, || listed(&account, &lists))
            .await;
        assert_eq!((c, b), (Ok(vec![Object("c", "3")]), Ok(vec![])));
        assert_eq!(
            lists.load(Ordering::SeqCst),
            1,
            "one list for three recent lookups"
        );
    }

    #[tokio::test]
    async fn a_renamed_object_is_found_by_its_new_name_only() {
        let index = NameIndex::default();
        let lists = AtomicUsize::new(0);
        let account = [Object("old", "1")];
        index
            .named("old", Lookup::Recent, || listed(&account, &lists))
            .await
            .unwrap();
        index.seen(Object("new", "1"));
        let old = index
            .named("old", Lookup::Recent, || listed(&account, &lists))
            .await;
        let new = index
            .named("new", Lookup::Recent, || listed(&account, &lists))
            .await;
        assert_eq!((old, new), (Ok(vec![]), Ok(vec![Object("new", "1")])));
    }

    #[tokio::test]
    async fn a_lookup_for_recovery_lists_again() {
        let index = NameIndex::default();
        let lists = AtomicUsize::new(0);
        index
            .named("a", Lookup::Recent, || listed(&[], &lists))
            .await
            .unwrap();
        let made_by_hand = [Object("a", "9")];
        let found = index
            .named("a", Lookup::Now, || listed(&made_by_hand, &lists))
            .await;
        assert_eq!(found, Ok(vec![Object("a", "9")]));
        assert_eq!(lists.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_create_during_a_list_survives_the_list_that_missed_it() {
        let index = NameIndex::default();
        let found = index
            .named("a", Lookup::Now, || async {
                index.seen(Object("a", "1"));
                Ok::<_, ()>(Vec::new())
            })
            .await;
        assert_eq!(found, Ok(vec![Object("a", "1")]));
    }

    #[tokio::test]
    async fn a_failed_list_is_reported_and_the_next_lookup_lists_again() {
        let index: NameIndex<Object> = NameIndex::default();
        let failed = index.named("a", Lookup::Recent, || async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
        let lists = AtomicUsize::new(0);
        index
            .named("a", Lookup::Recent, || listed(&[], &lists))
            .await
            .unwrap();
        assert_eq!(lists.load(Ordering::SeqCst), 1);
    }
}
