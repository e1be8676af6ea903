//! The one session table: every session from its POST on. A session is first `Negotiating` (admitted, its
//! media being negotiated off the manager task: it holds its place under the stream's viewer cap, its
//! token's `max_sessions` and the stream's one publisher), then `Live` (negotiated: it has a peer), and
//! leaves the table once. The caps count both states from this one table; everything else (the API, PATCH,
//! DELETE, media events, the sweep) sees only live sessions, so a session being negotiated is unknown there,
//! as it has no URL yet.

use std::collections::HashMap;

use super::Session;
use crate::ids::{SessionId, StreamName};
use crate::session::Role;

/// What a session being negotiated holds.
pub(super) struct Claim {
    pub role: Role,
    pub stream: StreamName,
    /// The token it was made with (`None`: admin, or access control off).
    pub token_id: Option<String>,
}

enum Entry {
    Negotiating(Claim),
    Live(Box<Session>),
}

impl Entry {
    fn live(&self) -> Option<&Session> {
        match self {
            Self::Live(s) => Some(s),
            Self::Negotiating(_) => None,
        }
    }

    fn role_stream_token(&self) -> (Role, &StreamName, Option<&str>) {
        match self {
            Self::Live(s) => (s.role, &s.stream, s.owner.token_id()),
            Self::Negotiating(c) => (c.role, &c.stream, c.token_id.as_deref()),
        }
    }
}

#[derive(Default)]
pub(super) struct Table {
    entries: HashMap<SessionId, Entry>,
}

impl Table {
    /// Session `id` is admitted and being negotiated.
    pub fn claim(&mut self, id: SessionId, claim: Claim) {
        self.entries.insert(id, Entry::Negotiating(claim));
    }

    /// Session `id`'s negotiation is over: it is live (`Some`) or gone (`None`: refused, or its client left).
    pub fn settle(&mut self, id: SessionId, session: Option<Session>) {
        match session {
            Some(s) => self.entries.insert(id, Entry::Live(Box::new(s))),
            None => self.entries.remove(&id),
        };
    }

    pub fn get(&self, id: &SessionId) -> Option<&Session> {
        self.entries.get(id).and_then(Entry::live)
    }

    pub fn get_mut(&mut self, id: &SessionId) -> Option<&mut Session> {
        match self.entries.get_mut(id) {
            Some(Entry::Live(s)) => Some(s.as_mut()),
            _ => None,
        }
    }

    /// Takes live session `id` out of the table (a negotiating one stays until it settles).
    pub fn remove(&mut self, id: &SessionId) -> Option<Session> {
        self.get(id)?;
        match self.entries.remove(id) {
            Some(Entry::Live(s)) => Some(*s),
            _ => None,
        }
    }

    /// The live sessions.
    pub fn iter(&self) -> impl Iterator<Item = (&SessionId, &Session)> {
        self.entries.iter().filter_map(|(id, e)| e.live().map(|s| (id, s)))
    }

    pub fn values(&self) -> impl Iterator<Item = &Session> {
        self.iter().map(|(_, s)| s)
    }

    pub fn ids(&self) -> Vec<SessionId> {
        self.iter().map(|(id, _)| *id).collect()
    }

    /// Live viewers of `stream`.
    pub fn viewers_of(&self, stream: &StreamName) -> usize {
        self.values().filter(|s| s.role == Role::Viewer && &s.stream == stream).count()
    }

    /// Viewers of `stream`, live or being negotiated: what its viewer cap counts.
    pub fn viewer_places(&self, stream: &StreamName) -> usize {
        self.counted(|role, s, _| role == Role::Viewer && s == stream)
    }

    /// Sessions of token `token_id`, live or being negotiated: what its `max_sessions` counts.
    pub fn sessions_of(&self, token_id: &str) -> usize {
        self.counted(|_, _, t| t == Some(token_id))
    }

    /// `stream` has a publisher, live or being negotiated.
    pub fn published(&self, stream: &StreamName) -> bool {
        self.counted(|role, s, _| role == Role::Publisher && s == stream) > 0
    }

    fn counted(&self, pred: impl Fn(Role, &StreamName, Option<&str>) -> bool) -> usize {
        self.entries
            .values()
            .filter(|e| {
                let (role, stream, token) = e.role_stream_token();
                pred(role, stream, token)
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> StreamName {
        StreamName::parse(s).expect("a name")
    }

    /// A negotiation holds its places under every cap from the one table, is invisible to everything
    /// else, and gives them back when it settles without a session.
    #[test]
    fn a_negotiation_counts_under_the_caps_and_is_unknown_elsewhere() {
        let mut t = Table::default();
        let (viewer, publisher) = (SessionId::random(), SessionId::random());
        t.claim(viewer, Claim { role: Role::Viewer, stream: name("main"), token_id: Some("t1".into()) });
        t.claim(publisher, Claim { role: Role::Publisher, stream: name("live"), token_id: None });
        assert_eq!((t.viewer_places(&name("main")), t.viewers_of(&name("main"))), (1, 0));
        assert_eq!((t.sessions_of("t1"), t.sessions_of("t2")), (1, 0));
        assert!(t.published(&name("live")) && !t.published(&name("main")));
        assert!(t.get(&viewer).is_none() && t.get_mut(&viewer).is_none() && t.remove(&viewer).is_none());
        assert_eq!(t.ids(), Vec::<SessionId>::new());
        assert_eq!(t.viewer_places(&name("main")), 1, "remove leaves a negotiation alone");
        t.settle(viewer, None);
        t.settle(publisher, None);
        assert_eq!((t.viewer_places(&name("main")), t.sessions_of("t1")), (0, 0));
        assert!(!t.published(&name("live")));
    }
}
