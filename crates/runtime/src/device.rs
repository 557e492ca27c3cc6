//! A bundle opened on this device for `run`: verified and unwrapped with
//! the device key, its release checked against the last one run, its
//! history opened, the API's keys and the backend's outbox and signer
//! derived, and everything a lockdown must wipe held in one [`Vault`].

use crate::api::ApiKeys;
use crate::backend_link::gated_signer;
use crate::gate::ShieldHandle;
use crate::recorder::{Recorder, schema};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use twinshield_backend::{BackendTls, BackendUrl, Outbox, OutboxError, SignRefused, Signer};
use twinshield_model::Model;
use twinshield_seal::{
    BundleHeader, DeviceIdentity, EmbeddedSecret, OpenedBundle, PublisherPub, SealError,
};
use twinshield_shield::{Policy, PolicyError};
use twinshield_shield_macros::diversify;
use twinshield_store::{Store, StoreError, WriterConfig};
use zeroize::Zeroizing;

/// Why a bundle could not be opened and readied on this device. Nothing
/// in the state directory has changed when one of these is returned
/// before the history opened.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The device identity, the bundle or its release check refused.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The bundle's shield policy does not parse.
    #[error("the bundle's shield policy: {0}")]
    Policy(#[source] PolicyError),
    /// The history in the data directory does not open.
    #[error("data directory {}: {source}", data.display())]
    History {
        /// The data directory.
        data: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The bundle's backend URL is unusable, or its TLS client cannot be
    /// built (no trust roots, an unusable extra certificate).
    #[error(transparent)]
    BackendTls(twinshield_backend::BackendError),
    /// The bundle pins the backend's trust anchors, and `--backend-ca`
    /// would add another.
    #[error(
        "the bundle pins the backend's trust anchors; --backend-ca cannot add another (seal the bundle with the new CA instead)"
    )]
    BackendCaPinned,
    /// The backend's outbox does not open.
    #[error("data directory {}: {source}", data.display())]
    Outbox {
        /// The data directory.
        data: PathBuf,
        /// Why.
        #[source]
        source: OutboxError,
    },
}

/// The bundle's backend, ready to publish to: URL, signer and outbox.
pub struct Backend {
    /// The backend's URL, as sealed.
    pub url: String,
    /// Signs with the device key, through the gate.
    pub signer: Signer,
    /// Messages waiting for delivery, encrypted under the device key.
    pub outbox: Outbox,
}

/// What a lockdown wipes: the device's keys and the bundle's secrets (both
/// zeroize on drop).
pub type Vault = Arc<Mutex<Option<(DeviceIdentity, Vec<(String, Zeroizing<Vec<u8>>)>)>>>;

/// Where `run` finds its inputs on this device.
pub struct DeviceRequest<'a> {
    /// The bundle's bytes.
    pub bundle: &'a [u8],
    /// The publisher key trusted to sign it.
    pub trust: &'a PublisherPub,
    /// The state directory holding the device's keys.
    pub state: &'a Path,
    /// The history's data directory.
    pub data: &'a Path,
    /// Where to write the count of durably stored samples, if anywhere.
    pub ack_file: Option<PathBuf>,
    /// Whether the API will run (its keys are derived only then).
    pub api: bool,
    /// Certificates (PEM) trusted for an `https://` backend besides the
    /// system's roots, for a bundle that pins no trust anchors (refused
    /// for one that does).
    pub backend_ca: Option<&'a [u8]>,
}

/// A bundle opened on this device, with what its session needs.
pub struct DeviceTwin {
    /// The model, decoded from the bundle.
    pub model: Model,
    /// The bundle's public header.
    pub header: BundleHeader,
    /// The bundle's shield policy (the release default if it names none).
    pub policy: Policy,
    /// The history recorder.
    pub recorder: Recorder,
    /// The API's keys, when the API runs.
    pub api_keys: Option<ApiKeys>,
    /// The bundle's backend, if it names one.
    pub backend: Option<Backend>,
    /// The TLS client for an `https://` backend.
    pub backend_tls: Option<BackendTls>,
    /// The device key's id.
    pub device_key_id: String,
    /// Identity components that matched, and how many there are.
    pub components: (usize, usize),
    /// How the device's keys are bound to the machine.
    pub binding: twinshield_api::BindingView,
}

#[diversify]
impl DeviceTwin {
    /// Opens `req.bundle` with this device's identity, checks its release
    /// and opens the history. A full guard check runs first: another copy
    /// of the check than the start-up's, so patching one out is not enough.
    pub fn open(req: DeviceRequest<'_>, shield: &ShieldHandle) -> Result<Self, DeviceError> {
        shield.check_before_key_use();
        let mut device = DeviceIdentity::open(req.state, &EmbeddedSecret)?;
        let opened = twinshield_seal::open(req.bundle, req.trust, &device)?;
        // The bundle is open: its key has done its one job.
        device.forget_bundle_key();
        let policy = policy_of(&opened)?;
        let backend_tls = backend_tls(
            opened.backend.as_deref(),
            opened.backend_ca.as_deref(),
            req.backend_ca,
        )?;
        // Checked before the history is opened (opening touches its file),
        // so a refused bundle changes nothing in the state directory.
        device.check_and_record_release(&opened.header.model_name, opened.header.release)?;
        let recorder = open_history(req.data, &device, &opened.model, req.ack_file, shield)?;
        let api_keys = req.api.then(|| {
            ApiKeys::new(
                &device.storage_key("api-tokens"),
                &device.storage_key("api-tls"),
            )
        });
        let OpenedBundle {
            header,
            model,
            secrets,
            backend,
            ..
        } = opened;
        let vault: Vault = Arc::new(Mutex::new(None));
        let backend = match backend {
            Some(url) => Some(backend_of(url, req.data, &device, &vault, shield)?),
            None => None,
        };
        let device_key_id = device.fingerprint().key_id_hex();
        let components = (
            device.matched_components(),
            device.fingerprint().components().count(),
        );
        let binding = binding_of(device.fingerprint());
        if let Ok(mut v) = vault.lock() {
            *v = Some((device, secrets));
        }
        // Only the signer and the lockdown hold the vault from here: with
        // neither, the device's keys are dropped (and zeroized) now.
        arm_lockdown(shield, &vault);
        Ok(DeviceTwin {
            model,
            header,
            policy,
            recorder,
            api_keys,
            backend,
            backend_tls,
            device_key_id,
            components,
            binding,
        })
    }
}

/// How `fp`'s keys are bound, as `/security` shows it.
#[diversify]
fn binding_of(fp: &twinshield_seal::DeviceFp) -> twinshield_api::BindingView {
    twinshield_api::BindingView {
        hardware_components: fp.hardware_components().map(str::to_owned).collect(),
        hardware_needed: fp.hardware_needed(),
        hardware_bound: fp.hardware_bound(),
    }
}

/// The bundle's shield policy (the release default when it names none).
#[diversify]
fn policy_of(opened: &OpenedBundle) -> Result<Policy, DeviceError> {
    match opened.shield_policy.as_deref() {
        Some(text) => text.parse::<Policy>().map_err(DeviceError::Policy),
        None => Ok(Policy::release_default()),
    }
}

/// The TLS client for the bundle's backend when it is `https://`, built
/// once before the twin starts: the anchors the bundle pins and nothing
/// else, or, for a bundle that pins none, the system's trust roots (their
/// fixed location, never the environment's) and `ca`. `None` for
/// `http://` or no backend.
#[diversify]
pub(crate) fn backend_tls(
    url: Option<&str>,
    pinned: Option<&[u8]>,
    ca: Option<&[u8]>,
) -> Result<Option<BackendTls>, DeviceError> {
    let https = match url {
        Some(u) => BackendUrl::parse(u)
            .map_err(DeviceError::BackendTls)?
            .is_https(),
        None => false,
    };
    if !https {
        return Ok(None);
    }
    let tls = match (pinned, ca) {
        (Some(_), Some(_)) => return Err(DeviceError::BackendCaPinned),
        (Some(pinned), None) => BackendTls::new(false, Some(pinned)),
        (None, ca) => BackendTls::new(true, ca),
    };
    tls.map(Some).map_err(DeviceError::BackendTls)
}

/// Opens (and compacts) the history in `data` and a recorder over it.
#[diversify]
fn open_history(
    data: &Path,
    device: &DeviceIdentity,
    model: &Model,
    ack_file: Option<PathBuf>,
    shield: &ShieldHandle,
) -> Result<Recorder, DeviceError> {
    let history = |source| DeviceError::History {
        data: data.to_path_buf(),
        source,
    };
    let mut store =
        Store::open(data, &device.storage_key("history"), Some(&schema(model))).map_err(history)?;
    // Return the pages freed since the last run to the file system.
    store.compact().map_err(history)?;
    let writer = store
        .into_writer(WriterConfig::default())
        .map_err(history)?;
    Ok(Recorder::new(writer, ack_file, shield.clone()))
}

/// The backend's outbox beside the history, encrypted under a key derived
/// from the device key, and a signer that signs with the device key where
/// the vault holds it, never while the gate refuses key use.
#[diversify]
fn backend_of(
    url: String,
    data: &Path,
    device: &DeviceIdentity,
    vault: &Vault,
    shield: &ShieldHandle,
) -> Result<Backend, DeviceError> {
    let outbox = Outbox::open(&data.join("outbox.redb"), &device.storage_key("outbox")).map_err(
        |source| DeviceError::Outbox {
            data: data.to_path_buf(),
            source,
        },
    )?;
    let held = Arc::clone(vault);
    let signer = gated_signer(
        device.fingerprint().key_id_hex(),
        shield.gate(),
        move |msg| {
            let held = held
                .lock()
                .map_err(|_| SignRefused("device key unavailable".into()))?;
            held.as_ref()
                .map(|(device, _)| device.sign(msg))
                .ok_or_else(|| SignRefused("device key wiped".into()))
        },
    );
    Ok(Backend {
        url,
        signer,
        outbox,
    })
}

/// Makes a lockdown wipe what the vault holds.
#[diversify]
fn arm_lockdown(shield: &ShieldHandle, vault: &Vault) {
    if let Some(s) = shield.shield() {
        let held = Arc::clone(vault);
        s.on_lockdown(Box::new(move || {
            if let Ok(mut held) = held.lock() {
                held.take();
            }
        }));
    }
}

/// The state directory when none is given: `/var/lib/twinshield` for
/// root, else `$XDG_STATE_HOME/twinshield` (`~/.local/state/twinshield`);
/// `None` when there is no home to put it in.
#[diversify]
pub fn default_state_dir() -> Option<PathBuf> {
    let root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if root.unwrap_or(false) {
        return Some(PathBuf::from("/var/lib/twinshield"));
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("twinshield"));
    }
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(".local/state/twinshield"))
}
