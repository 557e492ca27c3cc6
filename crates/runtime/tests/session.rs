//! A session's one gate: while the shield's verdict says degraded, the
//! session keeps monitoring (it still raises alarms) but writes no
//! history, queues and signs no backend message, and its API services
//! refuse acknowledgements. The same session under a sound verdict does
//! all three, so each assertion below can fail.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use twinshield_api::TwinServices;
use twinshield_backend::{Outbox, Publisher, PublisherConfig};
use twinshield_connect::{
    ConnectionState, PlantSample, PlantSource, PointMap, Quality, RegisterBank, SourceInfo,
};
use twinshield_plant::{Attack, AttackKind, PlantConfig, QuadTank};
use twinshield_runtime::api::Services;
use twinshield_runtime::backend_link::gated_signer;
use twinshield_runtime::eval::PLANT_STEP;
use twinshield_runtime::summary::AlarmSummary;
use twinshield_runtime::{
    BackendLink, Progress, Recorder, Session, SessionObserver, ShieldHandle, Verdict, Wiring,
    wiring,
};
use twinshield_store::{EventKind, Store, WriterConfig};
use twinshield_twin::{Twin, TwinSettings};
use zeroize::Zeroizing;

/// A verdict a test sets.
struct Fixed(AtomicBool);

impl Verdict for Fixed {
    fn degraded(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The reference plant in process: each read steps it one PLC period and
/// reads its registers through the model's point map.
struct InProcess {
    plant: QuadTank,
    map: PointMap,
    bank: RegisterBank,
}

impl PlantSource for InProcess {
    type Error = twinshield_connect::ReadError;

    async fn read(&mut self) -> Result<PlantSample, Self::Error> {
        self.plant.step(PLANT_STEP).unwrap();
        let r = self.plant.registers();
        self.bank.input = r.input.to_vec();
        self.bank.holding = r.holding.to_vec();
        self.bank.coils = r.coils.to_vec();
        let reading = self.bank.read(&self.map)?;
        Ok(PlantSample {
            quality: vec![Quality::Good; reading.values.len()],
            values: reading.values,
            source_time: None,
        })
    }

    fn state(&self) -> ConnectionState {
        ConnectionState::Connected
    }

    fn describe(&self) -> SourceInfo {
        SourceInfo {
            protocol: "modbus",
            address: "in-process".into(),
            channels: self.map.points().iter().map(|p| p.name.clone()).collect(),
        }
    }
}

#[derive(Default)]
struct Alarms(Vec<AlarmSummary>);

impl SessionObserver for Alarms {
    fn alarm_raised(&mut self, alarm: &AlarmSummary) {
        self.0.push(alarm.clone());
    }
    fn progress(&mut self, _: &Progress) {}
    fn notice(&mut self, _: &str) {}
}

/// What a session under `degraded` left behind.
struct Left {
    alarms_raised: usize,
    stored_samples: usize,
    stored_alarm_events: usize,
    queued_messages: u64,
    signatures: usize,
    acknowledgements_allowed: bool,
}

/// Runs the twin for 400 plant seconds with a 3 cm bias attack at 200 s
/// (after warm-up), with history, a backend link to a closed port (so
/// every queued message stays in the outbox) and API services.
fn session_under(degraded: bool) -> Left {
    let dir = tempfile::tempdir().unwrap();
    let verdict = Arc::new(Fixed(AtomicBool::new(degraded)));
    let shield = ShieldHandle::with_verdict(verdict);
    let model = wiring::quadtank().unwrap();
    let map = wiring::modbus_map(&model).unwrap();
    let attack = Attack::new(AttackKind::Bias, 200.0).with_magnitude(3.0);
    let source = InProcess {
        plant: QuadTank::new(PlantConfig {
            seed: 3,
            attack: Some(attack),
        })
        .unwrap(),
        map,
        bank: RegisterBank::default(),
    };
    let key = Zeroizing::new([7u8; 32]);
    let store = Store::open(
        dir.path(),
        &key,
        Some(&twinshield_runtime::recorder::schema(&model)),
    )
    .unwrap();
    let recorder = Recorder::new(
        store.into_writer(WriterConfig::default()).unwrap(),
        None,
        shield.clone(),
    );
    let services = Services::new(Some(recorder.store_handle()), &model, shield.clone());
    let signatures = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&signatures);
    let signer = gated_signer("device", shield.gate(), move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok([0u8; 64])
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let outbox = Outbox::open(&dir.path().join("outbox.redb"), &key).unwrap();
        let config = PublisherConfig {
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(1),
            ..PublisherConfig::default()
        };
        let publisher =
            Publisher::start_with("http://127.0.0.1:9/ingest", signer, outbox, config).unwrap();
        let session = Session {
            model: &model,
            wiring: Wiring::new(&model, &source.describe()).unwrap(),
            source,
            twin: Twin::new(
                &model,
                TwinSettings {
                    sample_period: PLANT_STEP,
                    ..TwinSettings::default()
                },
            )
            .unwrap(),
            period: Duration::from_millis(1),
            feed: None,
            attack: Some(("bias", 200.0)),
            recorder: Some(recorder),
            publisher: Some(BackendLink::new(publisher.clone(), shield.gate())),
            shield: shield.clone(),
            time: twinshield_runtime::SampleTime::Poll,
        };
        let mut n = 0u32;
        let clock = move || {
            n += 1;
            (n <= 4000).then(|| f64::from(n) * PLANT_STEP)
        };
        let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut alarms = Alarms::default();
        let outcome = session.run(clock, stop_rx, &mut alarms).await;
        let report = publisher.shutdown(Duration::from_millis(200)).await;
        drop(outcome.recorder);
        let store = Store::open(dir.path(), &key, None).unwrap();
        let events = store.events(f64::MIN, f64::MAX).unwrap();
        Left {
            alarms_raised: alarms.0.len(),
            stored_samples: store.samples(f64::MIN, f64::MAX).unwrap().len(),
            stored_alarm_events: events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::AlarmRaised | EventKind::AlarmCleared))
                .count(),
            queued_messages: report.pending + report.sent,
            signatures: signatures.load(Ordering::SeqCst),
            acknowledgements_allowed: services.writes_allowed(),
        }
    })
}

#[test]
fn a_sound_session_records_queues_and_acknowledges() {
    let left = session_under(false);
    assert!(left.alarms_raised > 0, "the bias attack raised no alarm");
    assert!(
        left.stored_samples > 3000,
        "{} samples stored",
        left.stored_samples
    );
    assert!(left.stored_alarm_events > 0);
    assert!(left.queued_messages > 0, "nothing queued for the backend");
    assert!(left.acknowledgements_allowed);
}

#[test]
fn a_degraded_session_writes_nothing_signs_nothing_acknowledges_nothing() {
    let left = session_under(true);
    // Monitoring goes on: the attack is still seen.
    assert!(
        left.alarms_raised > 0,
        "a degraded twin must keep monitoring"
    );
    assert_eq!(left.stored_samples, 0, "a degraded session wrote samples");
    assert_eq!(
        left.stored_alarm_events, 0,
        "a degraded session wrote alarms"
    );
    assert_eq!(
        left.queued_messages, 0,
        "a degraded session queued messages"
    );
    assert_eq!(left.signatures, 0, "a degraded session signed");
    assert!(
        !left.acknowledgements_allowed,
        "a degraded session acknowledges"
    );
}

#[test]
fn the_gated_signer_refuses_while_degraded_and_never_reaches_the_key() {
    let verdict = Arc::new(Fixed(AtomicBool::new(false)));
    let shield = ShieldHandle::with_verdict(verdict.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let signer = gated_signer("device", shield.gate(), move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok([1u8; 64])
    });
    let body = br#"{"x":1}"#;
    assert!(
        signer
            .sign_request("POST", "/ingest", body, 1_700_000_000)
            .is_ok()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    verdict.0.store(true, Ordering::SeqCst);
    let refused = signer.sign_request("POST", "/ingest", body, 1_700_000_000);
    assert!(refused.is_err(), "signed while degraded");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the key was reached while degraded"
    );
}
