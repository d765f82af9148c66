//! Record order rules for an x86 HVM/PVH stream, shared by the encoder (so
//! depmig never writes what it would refuse) and the decoder.
//!
//! The order enforced is the one Xen's saver produces and its restorer
//! relies on:
//!
//! ```text
//! [X86_CPUID_POLICY] [X86_MSR_POLICY] STATIC_DATA_END
//! ( PAGE_DATA* [VERIFY PAGE_DATA*] {X86_TSC_INFO, HVM_PARAMS, HVM_CONTEXT} CHECKPOINT )*
//!   PAGE_DATA* [VERIFY PAGE_DATA*] {X86_TSC_INFO, HVM_PARAMS, HVM_CONTEXT} END
//! ```
//!
//! The tail records come at most once each per checkpoint in any order:
//! the specification asks for HVM_PARAMS before HVM_CONTEXT, but libxc's
//! own saver writes HVM_CONTEXT first and its restorer applies the context
//! only once the stream is complete, so both orders must be read. depmig's
//! packed page record (`DEPMIG_PACKED_PAGES`) goes wherever PAGE_DATA may,
//! its delta record (`DEPMIG_DELTA_PAGES`) wherever PAGE_DATA may before
//! VERIFY;
//! whether it may appear at all is the decoder's question (the handshake's
//! agreement). HVM_CONTEXT
//! is mandatory before END or CHECKPOINT. Optional records (bit 31) may come
//! anywhere before END.

use crate::wire::rec;

/// A record that arrived where the order rules forbid it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderError {
    /// A record arrived after END.
    AfterEnd,
    /// A record type was repeated where it may come once.
    Duplicate(u32),
    /// A record came in a phase where it is not allowed.
    Misplaced(u32),
    /// END or CHECKPOINT came before the mandatory HVM_CONTEXT.
    MissingHvmContext,
    /// A mandatory record type depmig does not know or support.
    UnsupportedMandatory(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Static,
    Memory,
    Verify,
    Tail,
    Ended,
}

/// The order state machine; feed it every record type in stream order.
#[derive(Clone, Debug)]
pub struct OrderChecker {
    phase: Phase,
    seen_cpuid: bool,
    seen_msr: bool,
    seen_tsc: bool,
    seen_params: bool,
    seen_context: bool,
}

impl Default for OrderChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderChecker {
    /// A checker positioned just after the domain header.
    pub fn new() -> Self {
        OrderChecker {
            phase: Phase::Static,
            seen_cpuid: false,
            seen_msr: false,
            seen_tsc: false,
            seen_params: false,
            seen_context: false,
        }
    }

    /// Whether END has been accepted.
    pub fn ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// Whether the checker sits between STATIC_DATA_END and the tail, that
    /// is where PAGE_DATA is allowed.
    pub fn in_memory_phase(&self) -> bool {
        matches!(self.phase, Phase::Memory | Phase::Verify)
    }

    /// Accepts the next record type or says why it is out of order.
    pub fn accept(&mut self, rtype: u32) -> Result<(), OrderError> {
        if self.phase == Phase::Ended {
            return Err(OrderError::AfterEnd);
        }
        if rtype & rec::OPTIONAL != 0 {
            return Ok(());
        }
        let misplaced = Err(OrderError::Misplaced(rtype));
        match (self.phase, rtype) {
            (Phase::Static, rec::X86_CPUID_POLICY) => once(&mut self.seen_cpuid, rtype),
            (Phase::Static, rec::X86_MSR_POLICY) => once(&mut self.seen_msr, rtype),
            (Phase::Static, rec::STATIC_DATA_END) => {
                self.phase = Phase::Memory;
                Ok(())
            }
            (Phase::Memory | Phase::Verify, rec::PAGE_DATA | rec::DEPMIG_PACKED_PAGES) => Ok(()),
            // A delta applies to what the destination holds: not to the
            // resend that follows VERIFY, which is compared, not applied.
            (Phase::Memory, rec::DEPMIG_DELTA_PAGES) => Ok(()),
            (Phase::Memory, rec::VERIFY) => {
                self.phase = Phase::Verify;
                Ok(())
            }
            (Phase::Memory | Phase::Verify | Phase::Tail, rec::X86_TSC_INFO) => {
                self.phase = Phase::Tail;
                once(&mut self.seen_tsc, rtype)
            }
            (Phase::Memory | Phase::Verify | Phase::Tail, rec::HVM_PARAMS) => {
                self.phase = Phase::Tail;
                once(&mut self.seen_params, rtype)
            }
            (Phase::Memory | Phase::Verify | Phase::Tail, rec::HVM_CONTEXT) => {
                self.phase = Phase::Tail;
                once(&mut self.seen_context, rtype)
            }
            (Phase::Tail, rec::END | rec::CHECKPOINT) => {
                if !self.seen_context {
                    return Err(OrderError::MissingHvmContext);
                }
                if rtype == rec::END {
                    self.phase = Phase::Ended;
                } else {
                    self.phase = Phase::Memory;
                    self.seen_tsc = false;
                    self.seen_params = false;
                    self.seen_context = false;
                }
                Ok(())
            }
            (Phase::Memory | Phase::Verify, rec::END | rec::CHECKPOINT) => {
                Err(OrderError::MissingHvmContext)
            }
            (_, rec::END)
            | (_, rec::PAGE_DATA)
            | (_, rec::DEPMIG_PACKED_PAGES)
            | (_, rec::DEPMIG_DELTA_PAGES)
            | (_, rec::X86_TSC_INFO)
            | (_, rec::HVM_CONTEXT)
            | (_, rec::HVM_PARAMS)
            | (_, rec::VERIFY)
            | (_, rec::CHECKPOINT)
            | (_, rec::STATIC_DATA_END)
            | (_, rec::X86_CPUID_POLICY)
            | (_, rec::X86_MSR_POLICY) => misplaced,
            (_, other) => Err(OrderError::UnsupportedMandatory(other)),
        }
    }
}

fn once(flag: &mut bool, rtype: u32) -> Result<(), OrderError> {
    if *flag {
        return Err(OrderError::Duplicate(rtype));
    }
    *flag = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(types: &[u32]) -> Result<(), OrderError> {
        let mut c = OrderChecker::new();
        for &t in types {
            c.accept(t)?;
        }
        Ok(())
    }

    #[test]
    fn stock_and_spec_tail_orders_both_accepted() {
        use rec::*;
        let head = [
            X86_CPUID_POLICY,
            X86_MSR_POLICY,
            STATIC_DATA_END,
            PAGE_DATA,
            PAGE_DATA,
        ];
        let mut stock = head.to_vec();
        stock.extend([X86_TSC_INFO, HVM_CONTEXT, HVM_PARAMS, END]);
        assert_eq!(run(&stock), Ok(()));
        let mut spec = head.to_vec();
        spec.extend([X86_TSC_INFO, HVM_PARAMS, HVM_CONTEXT, END]);
        assert_eq!(run(&spec), Ok(()));
    }

    #[test]
    fn violations_are_typed() {
        use rec::*;
        assert_eq!(run(&[PAGE_DATA]), Err(OrderError::Misplaced(PAGE_DATA)));
        assert_eq!(
            run(&[STATIC_DATA_END, HVM_CONTEXT, PAGE_DATA]),
            Err(OrderError::Misplaced(PAGE_DATA))
        );
        assert_eq!(
            run(&[STATIC_DATA_END, END]),
            Err(OrderError::MissingHvmContext)
        );
        assert_eq!(
            run(&[STATIC_DATA_END, HVM_CONTEXT, HVM_CONTEXT]),
            Err(OrderError::Duplicate(HVM_CONTEXT))
        );
        assert_eq!(
            run(&[X86_CPUID_POLICY, X86_CPUID_POLICY]),
            Err(OrderError::Duplicate(X86_CPUID_POLICY))
        );
        assert_eq!(
            run(&[STATIC_DATA_END, HVM_CONTEXT, END, END]),
            Err(OrderError::AfterEnd)
        );
        assert_eq!(
            run(&[X86_PV_INFO]),
            Err(OrderError::UnsupportedMandatory(X86_PV_INFO))
        );
        assert_eq!(
            run(&[0x1234]),
            Err(OrderError::UnsupportedMandatory(0x1234))
        );
        assert_eq!(run(&[OPTIONAL | 7, STATIC_DATA_END]), Ok(()));
        assert_eq!(
            run(&[STATIC_DATA_END, PAGE_DATA, DEPMIG_PACKED_PAGES, PAGE_DATA]),
            Ok(())
        );
        assert_eq!(
            run(&[DEPMIG_PACKED_PAGES]),
            Err(OrderError::Misplaced(DEPMIG_PACKED_PAGES))
        );
        assert_eq!(
            run(&[STATIC_DATA_END, PAGE_DATA, DEPMIG_DELTA_PAGES, PAGE_DATA]),
            Ok(())
        );
        assert_eq!(
            run(&[STATIC_DATA_END, VERIFY, DEPMIG_DELTA_PAGES]),
            Err(OrderError::Misplaced(DEPMIG_DELTA_PAGES))
        );
        assert_eq!(
            run(&[STATIC_DATA_END, DEPMIG_EXT_FIRST]),
            Err(OrderError::UnsupportedMandatory(DEPMIG_EXT_FIRST))
        );
    }

    #[test]
    fn checkpoint_restarts_memory_phase() {
        use rec::*;
        let s = [
            STATIC_DATA_END,
            PAGE_DATA,
            HVM_CONTEXT,
            CHECKPOINT,
            PAGE_DATA,
            HVM_PARAMS,
            HVM_CONTEXT,
            END,
        ];
        assert_eq!(run(&s), Ok(()));
        assert_eq!(
            run(&[STATIC_DATA_END, PAGE_DATA, VERIFY, PAGE_DATA, VERIFY]),
            Err(OrderError::Misplaced(VERIFY))
        );
    }
}
