//! [`PhaseStep`]: a child actor that runs one attempt of one startup phase under its
//! timeout and reports the outcome to its AgentActor. A panic inside the phase surfaces to
//! the AgentActor as a supervision event (`ActorFailed`), which counts as a failed attempt.

use std::time::Duration;

use gastown_core::StartupPhase;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use crate::agent::{AgentMsg, PhaseDone};
use crate::context::{AgentContext, StartProgress};
use crate::error::PhaseFailure;
use crate::phases::{run_phase, stop_sdk};

/// Runs one phase attempt, then stops.
#[derive(Debug)]
pub(crate) struct PhaseStep;

/// What a [`PhaseStep`] runs.
#[derive(Debug)]
pub(crate) struct PhaseStepArgs {
    pub(crate) run_id: u64,
    pub(crate) phase: StartupPhase,
    pub(crate) attempt: u32,
    pub(crate) timeout: Duration,
    pub(crate) ctx: AgentContext,
    pub(crate) progress: StartProgress,
    pub(crate) parent: ActorRef<AgentMsg>,
}

impl Actor for PhaseStep {
    type Msg = ();
    type State = Option<PhaseStepArgs>;
    type Arguments = PhaseStepArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(Some(args))
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(args) = state.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            args.timeout,
            run_phase(args.phase, &args.ctx, args.progress),
        )
        .await;
        let elapsed = started.elapsed();
        let result = match outcome {
            Ok(Ok(progress)) => Ok(progress),
            Ok(Err(e)) => Err(PhaseFailure::Failed(e)),
            Err(_) => Err(PhaseFailure::TimedOut {
                after_ms: args.timeout.as_millis() as u64,
            }),
        };
        let sent = args.parent.cast(AgentMsg::PhaseDone(Box::new(PhaseDone {
            run_id: args.run_id,
            phase: args.phase,
            attempt: args.attempt,
            started,
            elapsed,
            result,
        })));
        // The parent is gone (town shut down): nobody will own what the phase started.
        if let Err(ractor::MessagingErr::SendErr(AgentMsg::PhaseDone(done))) = sent {
            if let Ok(progress) = done.result {
                if let Some(live) = progress.sdk {
                    stop_sdk(&live, args.ctx.parts.options.stop_grace).await;
                }
            }
        }
        myself.stop(None);
        Ok(())
    }
}
