# %% [markdown]
# # 003 · Full-covariance EM: does the start matter?
#
# Seed notebook `003` drew 3000 points from three random 2-D Gaussians with full covariances
# (`np.random.seed(3)`), ran full-covariance EM from a random start and from a k-means start,
# and drew the density contours after one iteration and at the end, with the log-likelihood
# trace. Its question: *how much does the initialization change what EM finds, and how fast?*
#
# One start per initializer is an anecdote (and the seed's `init_mean` ignored its
# `random_state`, and its `converged` flag was never set). Here each of the four
# initializers runs from several seeds on the seed's exact data, and we compare final
# log-likelihoods, iterations and agreement with the true labels.

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch

import mixtures
from mixtures import GaussianMixture
from mixtures import plot as mplot
from mixtures.evaluation import adjusted_rand_index

# %%
X, labels, truth = mixtures.data.seed003_data()            # the seed's draws, bit for bit: (3000, 2)
model = GaussianMixture(3, "full")
print(X.shape, "true weights", truth.weights.tolist())
print("log-likelihood per point of the true parameters:", round(float(truth.log_prob(X).mean()), 4))

# %% [markdown]
# ## Four initializers, four seeds each, at scikit-learn's default tolerance
#
# `"random_from_data"` is the seed's random start (three data points as means, the data's
# covariance for each); `"random"` draws random responsibilities (scikit-learn's
# `init_params="random"`); `"kmeans++"` is D²-sampling; `"kmeans"` runs Lloyd's algorithm
# from k-means++ centres (the seed's k-means start). `tol=1e-3` on the change of the
# log-likelihood per point is scikit-learn's default (the seed's 1e-3 was on the total, 3000
# times tighter here).

# %%
inits = ["random", "random_from_data", "kmeans++", "kmeans"]
rows, fits = [], {}
for init in inits:
    for seed in range(4):
        result = mixtures.fit(model, X, method="em", init=init, seed=seed, tol=1e-3, max_iter=500)
        fits[init, seed] = result
        rows.append({"init": init, "seed": seed, "iterations": result.n_iter, "converged": result.converged,
                     "loglik_per_point": result.log_likelihood / len(X),
                     "ari": adjusted_rand_index(labels, result.predict(X))})
table = pd.DataFrame(rows)
summary = table.groupby("init", sort=False).agg(
    best=("loglik_per_point", "max"), worst=("loglik_per_point", "min"),
    median_iterations=("iterations", "median"), min_ari=("ari", "min"), max_ari=("ari", "max"))
print(summary.round(4))
bayes_ari = adjusted_rand_index(labels, truth.responsibilities(X).argmax(-1))
print(f"ARI of the true parameters' own classification: {bayes_ari:.4f} (the components overlap)")

# %%
assert table[table["init"] != "random"]["converged"].all()
kmeans_rows = table[table["init"] == "kmeans"]
assert (abs(kmeans_rows["ari"] - bayes_ari) < 0.01).all()     # k-means starts find the true clustering
random_rows = table[table["init"] == "random"]
assert (random_rows["ari"] < 0.5).all() and (random_rows["iterations"] <= 5).all()
# stopped at the saddle: the fit says so (not converged, its components copies of each other)
assert not random_rows["converged"].any()
assert all(fits["random", seed].extras["indistinguishable_components"] for seed in range(4))

# %% [markdown]
# **"Converged" is not "at a maximum".** Random responsibilities give every component almost
# the data's mean and covariance: a near-symmetric point where the likelihood is flat, so the
# first changes are tiny and a loose tolerance stops EM there, with ARI ≈ 0. The seed (and
# scikit-learn) would report that as convergence; `mixtures` sees that the components are
# copies of each other, marks the fit not converged and says why in `extras["problems"]`.
# With a tight tolerance the same start escapes the saddle and reaches the optimum, after
# many more iterations:

# %%
tight = mixtures.fit(model, X, method="em", init="random", seed=0, tol=1e-6, max_iter=1000)
loose = fits["random", 0]
print(f"tol=1e-3: {loose.n_iter:3d} iterations, log-lik/pt {loose.log_likelihood / len(X):.4f}, "
      f"ARI {adjusted_rand_index(labels, loose.predict(X)):.3f}")
print(f"tol=1e-6: {tight.n_iter:3d} iterations, log-lik/pt {tight.log_likelihood / len(X):.4f}, "
      f"ARI {adjusted_rand_index(labels, tight.predict(X)):.3f}")
assert tight.log_likelihood > loose.log_likelihood + 0.1 * len(X)
assert abs(tight.log_likelihood - kmeans_rows["loglik_per_point"].max() * len(X)) < 1e-2 * len(X)

# %% [markdown]
# ## Contours after one iteration and at convergence
#
# The seed's picture, for its random start and for k-means: `max_iter=1` stops the same run
# after one iteration (it warns that it did not converge). The contours enclose 50 %, 80 % and
# 95 % of each fitted mixture's mass.

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 8.5))
for row, init in zip(axes, ["random_from_data", "kmeans"]):
    final = fits[init, 0]
    one = mixtures.fit(model, X, method="em", init=init, seed=0, max_iter=1)
    assert torch.equal(one.init.locs, final.init.locs) and one.n_iter == 1   # the same run, stopped early
    for ax, params, title in zip(row, [one.params, final.params], ["after 1 iteration",
                                                                    f"after {final.n_iter} iterations"]):
        mplot.plot_density_contours(ax, X, params, grid_size=60, n_samples=2000)
        ax.set_title(f"{init}: {title}")
fig.tight_layout()

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
mplot.plot_traces(axes[0], {"random, tol=1e-6": tight, **{f"{init}, seed 0": fits[init, 0] for init in inits[1:]}},
                  n_points=len(X), logx=True, title="log-likelihood per point")
for position, (init, group) in enumerate(table.groupby("init", sort=False)):
    axes[1].scatter(group["iterations"], group["loglik_per_point"], label=init, color=f"C{position}")
axes[1].set_xscale("log")
axes[1].set(xlabel="iterations to converge (tol=1e-3)", ylabel="final log-likelihood per point",
            title="four seeds per initializer")
axes[1].legend()
fig.tight_layout()

# %% [markdown]
# **Results.** k-means starts reach the best optimum in a handful of iterations, and their
# clustering agrees with the true labels as well as the true parameters' own classification
# does (the components overlap, so that is ARI ≈ 0.9, not 1). k-means++ alone takes a few
# more iterations; the seed's random start from data points sometimes stops in a worse local
# optimum; random responsibilities stop at a saddle under scikit-learn's default tolerance, which
# `mixtures` flags (scikit-learn reports convergence there). Always check the start (several
# starts: `n_init`), and do not read `converged` as "found the maximum". The shipped experiment
# `configs/init.yaml` runs this comparison at scale (20 seeds, EM and hard EM, with the spread figure):
# `mixtures run configs/init.yaml`.
