"""`pd_afd`: P/D disaggregation whose decode side is Attention-FFN disaggregated.

roles.prefill: prefill instances (as in `pd`); roles.attention + roles.ffn: AFD units (as in
`afd`) that only decode. A request prefills on a prefill instance, its KV cache moves to the
attention GPUs of an AFD unit (cosim.serving.deployments.pd), and it decodes there with the
micro-batch ping-pong pipeline (cosim.serving.deployments.afd). GPUs: prefill instances first,
then the AFD units (M attention + N FFN GPUs each).
"""

from __future__ import annotations

from cosim.serving.deployments import register_deployment
from cosim.serving.deployments.afd import AFDUnits, afd_unit_gpus
from cosim.serving.deployments.base import iteration_spans
from cosim.serving.deployments.pd import PDDeployment
from cosim.serving.instance import Instance


@register_deployment("pd_afd")
class PDAFDDeployment(PDDeployment):
    """Prefill instances in front of AFD decode units."""

    def _decode_gpus(self) -> int:
        return afd_unit_gpus(self.ctx.cfg.deployment)

    def _build_decode(self, first_gpu: int, first_iid: int) -> list[Instance]:
        self.units = AFDUnits(self, self.opts, first_gpu, decode_only=True, timer=self.timer)
        if not self.units.feasible:
            self.infeasible(self.units.reason)
            return []
        return self.units.build(self, first_iid)

    def describe(self) -> dict:
        out = super().describe()
        if self.feasible:
            out["gpus_by_role"] = {"prefill": sum(i.info.num_gpus for i in self.prefill),
                                   "attention": self.units.count * self.units.M,
                                   "ffn": self.units.count * self.units.N}
            out["afd"] = self.units.describe()
        return self.with_role_costs(out)

    def summary_extras(self, req=None, it=None) -> dict:
        out = super().summary_extras(req, it)
        if self.feasible:
            out.update(self.units.summary_extras())
        return out

    def cost_models(self) -> list:
        out = super().cost_models()
        if self.feasible:
            from cosim.serving.deployments.afd import _CostView

            out.append(_CostView(self.units.cost, self.units.comm, self.units.ffn_cost))
        return out

    def _trace(self, tb) -> None:
        iteration_spans(tb, self.prefill, self.window)
        self.units.trace(tb)
