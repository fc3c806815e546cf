//! Confirming a running SDK server before answering `ensure`: the real process's status
//! and a health probe, at once and within a timeout (`ARCHITECTURE.md`, *Decision tree*:
//! a short circuit needs an observed live process, not remembered fields).

use std::time::Duration;

use gastown_core::policy::ServerObservation;
use gastown_core::{EnsureDecision, StartupReport};
use ractor::ActorRef;

use super::{AgentMsg, AgentState, Mode};
use crate::context::LiveSdk;
use crate::error::Error;
use crate::phases::stop_server;
use crate::ready::MayorReady;

impl AgentState {
    /// Probes `live` in a spawned task that reports [`AgentMsg::ProbeDone`].
    pub(super) fn begin_probe(&mut self, myself: &ActorRef<AgentMsg>, live: LiveSdk) {
        let probe_id = self.next_id();
        self.mode = Mode::Probing { probe_id };
        let timeout = self.ctx.parts.options.probe_timeout;
        let me = myself.clone();
        tokio::spawn(async move {
            let server = probe(&live, timeout).await;
            let _ = me.cast(AgentMsg::ProbeDone { probe_id, server });
        });
    }

    /// Answers the waiters from a live server (a short circuit), or replaces a dead one.
    pub(super) fn on_probe_done(
        &mut self,
        myself: &ActorRef<AgentMsg>,
        probe_id: u64,
        server: ServerObservation,
    ) {
        if !matches!(self.mode, Mode::Probing { probe_id: p } if p == probe_id) {
            return;
        }
        let decision = self.decide(Some(server));
        if decision.starts_agent() {
            // The town believed the server ran; the real process or its health says no.
            if let Some(live) = self.take_live() {
                let grace = self.ctx.parts.options.stop_grace;
                tokio::spawn(async move { stop_server(live.process.as_ref(), grace).await });
            }
            self.begin_run(myself, decision, false);
            return;
        }
        // A request that woke the paused town gets that decision: the live server it finds
        // was frozen, not started.
        let woke = self.waiters.iter().any(|w| w.woke_ms.is_some());
        self.record_decision(if woke {
            EnsureDecision::ResumePaused
        } else {
            decision
        });
        self.mode = Mode::Idle;
        for b in self.boot_waiters.drain(..) {
            let _ = b.send(true);
        }
        if self.ctx.spec.role == gastown_core::Role::Mayor && !self.waiters.is_empty() {
            let ms = self.waiters.iter().map(|w| w.requested.elapsed()).max();
            let ms = ms.unwrap_or_default().as_millis() as u64;
            crate::telemetry::mayor_done(self.subject(), false, decision, ms);
        }
        let endpoint = self.live.as_ref().map(|l| l.endpoint.clone());
        for w in self.waiters.drain(..) {
            let ready = match (&endpoint, &self.session_id) {
                (Some(endpoint), Some(session_id)) => {
                    let total_ms = w.requested.elapsed().as_millis() as u64;
                    let mut report = match w.woke_ms {
                        Some(resume_ms) => {
                            let mut r = StartupReport::short_circuit(
                                EnsureDecision::ResumePaused,
                                total_ms,
                            );
                            r.timings
                                .insert(crate::telemetry::CONTAINER_RESUME_MS.into(), resume_ms);
                            r
                        }
                        None => StartupReport::short_circuit(decision, total_ms),
                    };
                    report.total_ms = total_ms;
                    Ok(MayorReady {
                        endpoint: endpoint.clone(),
                        session_id: session_id.clone(),
                        report,
                    })
                }
                _ => Err(Error::NotRunning {
                    agent: self.ctx.spec.id.clone(),
                }),
            };
            let _ = w.reply.send(ready);
        }
    }
}

/// Looks at the real process and asks the server for its health within `timeout`.
async fn probe(live: &LiveSdk, timeout: Duration) -> ServerObservation {
    // Both at once: on Docker the process status is an engine round trip of its own. A
    // probe that does not finish in time counts as a dead server.
    let both = async { tokio::join!(live.process.status(), live.client.health()) };
    match tokio::time::timeout(timeout, both).await {
        Ok((status, health)) => {
            let process_alive = status.is_alive();
            ServerObservation {
                process_alive,
                healthy: process_alive && matches!(health, Ok(h) if h.healthy),
            }
        }
        Err(_) => ServerObservation {
            process_alive: false,
            healthy: false,
        },
    }
}

impl AgentState {
    /// Asks the runtime, in a spawned task, for a server of this agent that an earlier
    /// host left running (`phases::adopt`); reports [`AgentMsg::AdoptDone`]. Once per
    /// actor: a server this actor lost later is not looked for again.
    pub(super) fn begin_adopt(&mut self, myself: &ActorRef<AgentMsg>) {
        self.adoption_tried = true;
        self.mode = Mode::Adopting;
        let ctx = self.ctx.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let live = match crate::phases::adopt(&ctx).await {
                Ok(live) => live,
                Err(e) => {
                    tracing::warn!(agent = %ctx.spec.id, error = %e, "looking for a server to adopt");
                    None
                }
            };
            if let Err(ractor::MessagingErr::SendErr(AgentMsg::AdoptDone(Some(live)))) =
                me.cast(AgentMsg::AdoptDone(live))
            {
                // The actor is gone: nobody will own the server.
                stop_server(live.process.as_ref(), ctx.parts.options.stop_grace).await;
            }
        });
    }

    /// With an adopted server, the agent is warm: waiting callers get it through the
    /// probe (a short circuit, `short_circuit_warm` for a mayor the store remembers as
    /// running), boot hydration hears it is ready. Without one, the start runs as it
    /// would have.
    pub(super) fn on_adopt_done(&mut self, myself: &ActorRef<AgentMsg>, live: Option<LiveSdk>) {
        if !matches!(self.mode, Mode::Adopting) {
            // Drained meanwhile: the adopted server goes with everything else.
            if let Some(live) = live {
                let grace = self.ctx.parts.options.stop_grace;
                tokio::spawn(async move { stop_server(live.process.as_ref(), grace).await });
            }
            return;
        }
        self.mode = Mode::Idle;
        // One read for both questions: the session to resume, and (without one) the
        // decision of the run.
        let stored = self.stored_record();
        let remembered = stored.as_ref().and_then(|r| r.session_id.clone());
        match (live, remembered) {
            (Some(live), Some(session_id)) => {
                self.session_id = Some(session_id.clone());
                self.set_live(myself, live.clone(), &session_id, false);
                if self.waiters.is_empty() {
                    for b in self.boot_waiters.drain(..) {
                        let _ = b.send(true);
                    }
                } else {
                    self.begin_probe(myself, live);
                }
            }
            (live, _) => {
                // No session to resume on it (or no server): a run, which keeps an
                // adopted server (same configuration) and finds or makes the session.
                if let Some(live) = live {
                    self.live = Some(live);
                }
                // Boot hydration asked first: the run is its prewarm, which callers join.
                let prewarm = !self.boot_waiters.is_empty();
                if !prewarm && self.waiters.is_empty() {
                    return;
                }
                let decision = Self::decide_on(stored.as_ref(), None);
                self.begin_run(myself, decision, prewarm);
                if prewarm && !self.waiters.is_empty() {
                    self.record_decision(decision);
                }
            }
        }
    }
}
