# %% [markdown]
# # 002 · EM from a given partition, and the ELBO equal to the log-likelihood
#
# Seed notebook `002` fitted a 1-D Gaussian mixture to ten points by EM started from a given
# **partition** (a label per point), computed the mixture log-likelihood and the **ELBO**
# `E_q[log p(X, Z)] + H(q)`, and asked why the two were "almost" equal (−23.54 against
# −23.31). It then ran EM to a relative tolerance and tabulated the trace and the
# parameters.
#
# The answer to its question: right after an exact E step, `q(Z) = p(Z | X, θ)` and the
# ELBO *equals* the log-likelihood (their gap is `KL(q ‖ p(Z | X, θ)) = 0`). The seed's E step
# used a log-normal density, so its `q` was not the posterior and the gap, 0.226 nats, is
# exactly the KL divergence of its `q` from the true posterior. Both statements are checked
# below to 1e-12.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy.stats import lognorm

import mixtures
from mixtures import EMStep, GaussianMixture
from mixtures import plot as mplot
from mixtures.init import initialize

x = torch.tensor([-3.3, -4.4, -1.9, 3.3, 2.5, 3.2, 0.3, 0.1, -0.1, -0.5], dtype=torch.float64).unsqueeze(-1)  # (10, 1)
partition1 = [1, 1, 1, 2, 2, 2, 2, 2, 1, 1]
partition2 = [1, 3, 2, 1, 3, 2, 1, 3, 2, 1]

# %% [markdown]
# ## Question 1: parameters from a partition
#
# A partition is an initializer like any other (`init=labels`): each class's proportion,
# mean and (maximum-likelihood) variance.

# %%
model3 = GaussianMixture(3, "diag")
params = initialize(model3, x, torch.tensor(partition2), reg_covar=0.0)
table = pd.DataFrame({"pi": params.weights, "mu": params.locs.squeeze(-1),
                      "sigma2": params.covariances.reshape(-1)}, index=pd.Index([1, 2, 3], name="class"))
print(table)
# the seed printed pi [0.4, 0.3, 0.3], mu [-0.05, 0.4, -0.6], sigma2 [5.5275, 4.46, 8.18]
np.testing.assert_allclose(table.to_numpy().T, [[0.4, 0.3, 0.3], [-0.05, 0.4, -0.6], [5.5275, 4.46, 8.18]],
                           rtol=1e-12, atol=1e-15)

# %% [markdown]
# ## Questions 2-4: E step, M step, log-likelihood and ELBO

# %%
step = EMStep(model3, x, reg_covar=0.0)
log_likelihood = float(params.log_prob(x).sum())
q = step.responsibilities(params)                                     # (N, K) = p(Z | X, θ)
summary = step.e_step(params)
elbo_package = float(model3.elbo(summary, params))

# the same ELBO written out as the seed wrote it, vectorized
log_joint = params.joint_log_prob(x)                                  # (N, K): log π_k + log N(x_n | μ_k, σ²_k)
expected_log_joint = float((q * log_joint).sum())
entropy = float(-(q * q.log()).sum())
print(f"log-likelihood          {log_likelihood:.15f}  (seed: -23.314947226151602)")
print(f"E_q[log p(X, Z)] + H(q) {expected_log_joint:.6f} + {entropy:.6f} = {expected_log_joint + entropy:.15f}")
print(f"package ELBO            {elbo_package:.15f}")
assert abs(log_likelihood - (-23.314947226151602)) < 1e-12
assert abs(expected_log_joint + entropy - log_likelihood) < 1e-12
assert abs(elbo_package - log_likelihood) < 1e-12

# %% [markdown]
# **The seed's "almost??"** Its E step used `lognorm.pdf(x, s=σ², scale=exp(μ))` inside a log
# (a density where a log-density belongs, of the wrong distribution). Reproducing that `q`
# reproduces its ELBO, and the gap to the log-likelihood is `KL(q_seed ‖ p(Z | X, θ))`:

# %%
w, mu, s2 = params.weights.numpy(), params.locs.squeeze(-1).numpy(), params.covariances.reshape(-1).numpy()
seed_log_tau = np.log(w) + np.stack([lognorm.pdf(x.squeeze(-1).numpy(), s=s2[k], scale=np.exp(mu[k]))
                                     for k in range(3)], axis=1)
q_seed = torch.from_numpy(np.exp(seed_log_tau - np.logaddexp.reduce(seed_log_tau, axis=1, keepdims=True)))
elbo_seed = float((q_seed * (log_joint - q_seed.log())).sum())
kl_seed = float((q_seed * (q_seed.log() - q.log())).sum())
print(f"seed's ELBO {elbo_seed:.15f} (seed printed -23.540883360976366)")
print(f"gap {log_likelihood - elbo_seed:.12f} = KL(q_seed || posterior) {kl_seed:.12f}")
assert abs(elbo_seed - (-23.540883360976366)) < 1e-11
assert abs((log_likelihood - elbo_seed) - kl_seed) < 1e-12

# %% [markdown]
# The seed's M step then gave every component the same mean (`compute_mu` returned the data,
# not a weighted sum). The package's M step, for comparison, one step from `params`:

# %%
params1 = step.m_step(summary)
print(pd.DataFrame({"pi": params1.weights, "mu": params1.locs.squeeze(-1), "sigma2": params1.covariances.reshape(-1)},
                   index=pd.Index([1, 2, 3], name="class")))
np.testing.assert_allclose(params1.weights.numpy(), q.mean(0).numpy(), rtol=1e-12)
np.testing.assert_allclose(params1.locs.squeeze(-1).numpy(), (q * x).sum(0) / q.sum(0), rtol=1e-12)

# %% [markdown]
# ## Question 5: EM from `partition1` to a relative tolerance, as tables
#
# `rtol=1e-6` stops when the log-likelihood changes by less than 1e-6 of its magnitude, the
# seed's rule. The history holds, per iteration, the exact log-likelihood, the ELBO of the
# E step that produced the parameters, and their gap (`kl`), with row 0 the start.

# %%
em = mixtures.fit(GaussianMixture(2, "diag"), x, method="em", init=partition1, rtol=1e-6, max_iter=500,
                  reg_covar=0.0)
trace = pd.DataFrame(em.history.records()).astype({"iteration": int}).set_index("iteration")
print(trace[["log_likelihood", "elbo", "kl"]])
print(pd.DataFrame({"pi": em.params.weights, "mu": em.params.locs.squeeze(-1),
                    "sigma2": em.params.covariances.reshape(-1)}, index=pd.Index([1, 2], name="cluster")))
ll = em.history["log_likelihood"]
assert em.converged
assert (torch.diff(ll) >= -1e-12).all()                      # the seed's trace went *down*: its E step was wrong
assert abs(ll[-2] - ll[-3]) <= 1e-6 * abs(ll[-2])             # stopped by the relative tolerance
assert (em.history["kl"][1:] >= -1e-12).all()                 # KL(q_t || p(Z | X, θ_t)) >= 0

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
mplot.plot_traces(axes[0], {"log-likelihood": em.history}, per_point=False, title="EM from partition 1")
mplot.plot_traces(axes[0], {"ELBO": em.history}, column="elbo", per_point=False, colors={"ELBO": "C1"})
axes[0].set_ylabel("nats (total)")
mplot.plot_kl_gap(axes[1], {"EM": em}, title="gap = KL(q_t || p(Z | X, θ_t))")
mplot.plot_mixture(axes[2], x, {"start (partition 1)": em.init, "EM": em.params}, bins=6, title="fitted densities")
fig.tight_layout()

# %% [markdown]
# **Results.** From `partition2` the parameters are the seed's to every digit; right after an
# exact E step the ELBO equals the log-likelihood (−23.314947…, to 1e-12), and the seed's
# −23.54 is its wrong `q`'s ELBO, short by exactly that `q`'s KL divergence from the
# posterior. From `partition1`, EM climbs monotonically until the relative change falls below
# 1e-6 (after a long plateau near −23.0 that a looser tolerance would have taken for
# convergence). The ELBO of each iteration's `q` trails the log-likelihood of the parameters it
# produced by `KL(q_t ‖ p(Z | X, θ_t))`: small on the plateau, largest where the parameters move
# fast, and 5e-7 at the end.
