//! What sources tell the registry (`Change`), what a change did (`Effect`), and why one was
//! refused (`RegistryError`). Every source speaks this one language, whether it is a zone file,
//! the API, a probe, the host-name resolver or another replica through the shared store.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::model::{CheckSpec, Instance, Status, Stored, ZoneError, ZoneFile};
use crate::store::Fresh;

/// Something a source wants the registry to know.
#[derive(Debug, Clone)]
pub enum Change {
    /// A zone file parsed and validated; replaces everything that file declared before.
    ZoneFile(ZoneFile),
    /// A zone file is gone; its instances go with it.
    ZoneFileRemoved(PathBuf),
    /// A zone file no longer parses; its last good version keeps serving.
    ZoneFileBroken {
        path: PathBuf,
        errors: Vec<ZoneError>,
    },
    /// An API registration, new or replacing one with the same id. Without
    /// `replace_existing_checks`, checks registered earlier and absent now are kept (Consul's rule).
    Register {
        instance: Instance,
        replace_existing_checks: bool,
    },
    Deregister {
        id: String,
    },
    /// `Some(reason)` puts an instance into maintenance, `None` takes it out.
    Maintenance {
        id: String,
        reason: Option<String>,
    },
    /// A check registered on its own (`PUT /v1/agent/check/register`, or a check of
    /// `PUT /v1/catalog/register`), added to what its owner has or replacing its namesake.
    AddCheck {
        owner: CheckOwner,
        check: CheckSpec,
        /// An external check's output as its registrar sends it (`Output`); others start empty.
        output: String,
    },
    /// A check taken away from whatever carries it (an instance or a node).
    RemoveCheck {
        check_id: String,
    },
    /// An external node goes, and every instance registered on it.
    DeregisterNode {
        node: String,
    },
    /// Several changes that land together or not at all (`PUT /v1/catalog/register`: a node,
    /// its service and their checks).
    All(Vec<Change>),
    /// A check's new result: a heartbeat, an explicit pass/warn/fail, or a probe.
    CheckUpdate {
        check_id: String,
        status: Status,
        output: String,
    },
    /// Nothing changes, but the next snapshot is published all the same: readers that derive
    /// views of their own from each snapshot (the DNS fast path) derive them again, after their
    /// settings changed (a configuration reload).
    Republish,
    /// What a host-name address resolves to now (`hosts.rs`); empty forgets the name. Not stored
    /// and not a new catalog version: it is the upstream's data, re-resolved after a restart.
    Resolved {
        host: String,
        addrs: Vec<IpAddr>,
    },
    /// A registration as the shared store holds it (cluster mode: another replica wrote it, or
    /// this one did and the watch reports it back). Applied without writing back. `revision` is
    /// the store revision this is known at; anything older than what this replica already knows
    /// of the key is ignored, so its own writes never flap back. `modified` is the key's
    /// modification revision (0 = absent), which the next write of the key must expect.
    Remote {
        key: String,
        stored: Option<Stored>,
        modified: u64,
        revision: u64,
    },
    /// A TTL heartbeat another replica received.
    RemoteBeat {
        check_id: String,
    },
    /// Everything the shared store holds at `revision` (after a gap in watching it that the store
    /// can no longer replay): replaces every API registration. Each record with its `modified`.
    Reload {
        records: Vec<(Stored, u64)>,
        revision: u64,
    },
    /// The shared store's watch has delivered every change up to `revision`: no older news of
    /// a key can come any more, so what this replica remembers of deleted keys up to there can
    /// go.
    Watched {
        revision: u64,
    },
}

impl Change {
    /// Returns true if the change comes from the shared store: it is already durable there, so
    /// it is never written back nor rolled back.
    pub fn is_remote(&self) -> bool {
        matches!(
            self,
            Change::Remote { .. } | Change::RemoteBeat { .. } | Change::Reload { .. } | Change::Watched { .. }
        )
    }
}

impl From<Fresh> for Change {
    /// The store's value of a key, to apply as news from the store.
    fn from(f: Fresh) -> Self {
        Change::Remote { key: f.key, stored: f.stored, modified: f.modified, revision: f.revision }
    }
}

/// What a check registered on its own is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOwner {
    /// An instance, by id: the check gates that instance.
    Instance(String),
    /// A node (`None`: this server's own): the check gates every instance on it.
    Node(Option<String>),
}

/// Why a change was refused. A refused change alters nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Zone(ZoneError),
    #[error("id {id:?} is declared in zone file {}; change it there", path.display())]
    ZoneOwned { id: String, path: PathBuf },
    #[error("unknown service id {0:?}")]
    UnknownInstance(String),
    /// `on` says where: `node "db-1"`, or this server's own node.
    #[error("id {id:?} is already registered on {on}; deregister it there first")]
    IdOnOtherNode { id: String, on: String },
    #[error("unknown node {0:?}")]
    UnknownNode(String),
    #[error("unknown check id {0:?}")]
    UnknownCheck(String),
    #[error("check id {check:?} already belongs to instance {owner:?}")]
    CheckIdTaken { check: String, owner: String },
    #[error("the store could not write ({0}); nothing was changed")]
    Store(String),
    #[error("the registry has stopped")]
    Stopped,
    /// A caller's rules do not allow writing a service the change touches.
    #[error("{0}")]
    Denied(crate::acl::Denied),
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    /// Nothing visible changed.
    None,
    /// Only detail changed (a check's output text): readers should see it, but it is not a new
    /// version of the catalog (no `X-Consul-Index` or SOA serial bump).
    Detail,
    /// The catalog changed.
    Changed,
}
