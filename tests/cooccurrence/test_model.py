"""The model of Eq. 1, its analytic gradients, and the gradient-flow claims of Yang et al. 2024
(Theorems 3.1, 3.2 and the automatic balancing of Lemmas 4.4, 4.5) at CPU-small sizes."""

import numpy as np
import pytest
import torch

from tdyn.cooccurrence.data import sample_distribution, sample_training_set, with_noise_tokens
from tdyn.cooccurrence.model import (
    Params,
    condition1_sigmas,
    forward,
    gradients,
    init_params,
    logistic_loss,
    loss,
    phase2_loss_rate,
    phase_times,
    record_steps,
    reduced_velocities,
    score_matrix,
    special_word_flow,
    train,
    uniform_attention_flow,
    word_values,
)
from tdyn.cooccurrence.theory import log_growth_exponent

# Small "default regime": Condition 1 scales (times 0.1, so |F^(0)| ~ 0.02 as Lemma D.8
# wants), exact fractions, distinct random words (Assumption 2.3), n = 3 L^2 (Condition 1
# asks n >= L^2 up to logs; at n = 12 the random words memorize and G1 + G3 stays > 0).
N, L, D, M, M1 = 48, 4, 83, 32, 32
SCALE, LR, STEPS = 0.1, 0.05, 3000
SEEDS = range(5)


def _torch_loss(params: Params, data):
    """Eq. 1 and Eq. 2 written literally in torch: softmax over keys for each query x_l,
    sum over queries and neurons, mean logistic loss.  Returns (loss, leaf tensors)."""
    leaves = {k: torch.tensor(getattr(params, k), requires_grad=True) for k in Params.TRAINABLE}
    a = torch.tensor(params.a)
    X = torch.tensor(data.X)
    y = torch.tensor(data.y, dtype=torch.float64)
    F = torch.zeros(data.n, dtype=torch.float64)
    for l_ in range(data.L):
        s = (X.transpose(1, 2) @ leaves["WK"].T @ leaves["WQ"] @ X[:, :, l_:l_ + 1]).squeeze(-1)
        p = torch.softmax(s / params.m ** 0.5, dim=1)
        F = F + torch.einsum("j,jm,imh,ih->i", a, leaves["W"], leaves["WV"] @ X, p)
    return torch.nn.functional.softplus(-y * F).mean(), leaves


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["onehot", "random"])
@pytest.mark.parametrize("init", ["gaussian", "kaiming_uniform"])
def test_analytic_gradients_match_autograd(seed, kind, init):
    data = sample_training_set(12, 4, 30, seed=seed, embedding_kind=kind)
    # sigma large enough that attention is far from uniform and every term matters
    params = init_params(30, 8, 6, seed=seed + 10, init=init, sigma0=0.4, sigma1=0.4)
    _assert_gradients_match_autograd(params, data)


def _assert_gradients_match_autograd(params, data):
    """Loss to 1e-12 and each analytic gradient to 1e-8 relative against autograd of Eq. 1."""
    value, leaves = _torch_loss(params, data)
    value.backward()
    assert value.item() == pytest.approx(loss(params, data), rel=1e-12)
    ours = gradients(params, data)
    for name in Params.TRAINABLE:
        auto = leaves[name].grad.numpy()
        rel = np.linalg.norm(ours[name] - auto) / np.linalg.norm(auto)
        assert rel < 1e-8, (name, rel)


def test_attention_is_not_uniform_in_the_gradient_check():
    """The gradient check above must exercise the softmax: attention there is far from 1/L."""
    data = sample_training_set(12, 4, 30, seed=0)
    fwd = forward(init_params(30, 8, 6, seed=10, sigma0=0.4, sigma1=0.4), data)
    assert np.abs(fwd.P - 1 / 4).max() > 0.05


def test_output_invariant_to_positions():
    """No positional encoding, softmax over all keys, sum over all queries: F(X) = F(X Pi)."""
    data = sample_training_set(12, 5, 60, seed=1)
    params = init_params(60, 8, 6, seed=2, sigma0=0.5, sigma1=0.5)
    rng = np.random.default_rng(3)
    shuffled = type(data)(tokens=np.stack([rng.permutation(r) for r in data.tokens]),
                          types=data.types, y=data.y, embeddings=data.embeddings)
    np.testing.assert_allclose(forward(params, shuffled).F, forward(params, data).F, rtol=1e-12)


def test_eq5_neuron_correlation_identity():
    """Eq. 5: d/dt ||W^T a||^2 = (2 m1 / n) sum_i g_i y_i F_i, exact for the gradient flow."""
    data = sample_training_set(12, 4, 30, seed=4)
    params = init_params(30, 8, 6, seed=5, sigma0=0.4, sigma1=0.4)
    fwd = forward(params, data)
    grads = gradients(params, data, fwd)
    du = -grads["W"].T @ params.a
    lhs = 2 * params.u @ du
    rhs = 2 * params.m1 / data.n * np.sum(fwd.g * data.y * fwd.F)
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_reduced_variables_follow_the_chain_rule(seed):
    """Eqs. 4, 5, 7 and Lemma F.11 (reduced variables G, Gamma, ||u||^2, A) equal the chain
    rule applied to the weight flow -grad, at a point with far-from-uniform attention."""
    data = sample_training_set(12, 4, 30, seed=seed, embedding_kind="random")
    params = init_params(30, 8, 6, seed=seed + 20, sigma0=0.4, sigma1=0.4)
    fwd = forward(params, data)
    grads = gradients(params, data, fwd)
    E = data.embeddings
    du = -grads["W"].T @ params.a
    dV, dK, dQ = (-grads[k] @ E for k in ("WV", "WK", "WQ"))
    chain = {
        "G": du @ fwd.V_tok + params.u @ dV,
        "Gamma": dV.T @ fwd.V_tok + fwd.V_tok.T @ dV,
        "kappa": 2 * params.u @ du,
        "A": dK.T @ fwd.Q_tok + fwd.K_tok.T @ dQ,
    }
    reduced = reduced_velocities(params, data, fwd)
    for key, value in chain.items():
        scale = np.abs(value).max()
        assert np.abs(reduced[key] - value).max() <= 1e-12 * scale, key


@pytest.mark.parametrize("init", ["gaussian", "kaiming_uniform", "kaiming_normal"])
def test_initialization_statistics(init):
    """Entry standard deviations within 5 standard errors of the target (the sample s.d. of
    k Gaussian/uniform entries has s.e. about sd * sqrt((kurtosis - 1) / (4 k)) <= sd /
    sqrt(k)); output signs exactly +-1 and roughly balanced."""
    d, m, m1 = 64, 128, 256
    s0, s1 = condition1_sigmas(5, m, m1)
    params = init_params(d, m, m1, seed=0, init=init, sigma0=s0, sigma1=s1)
    targets = {
        "gaussian": (s1, s0),
        "kaiming_uniform": (1 / np.sqrt(3 * m), 1 / np.sqrt(3 * d)),
        "kaiming_normal": (np.sqrt(2 / m), np.sqrt(2 / d)),
    }[init]
    for w, sd in ((params.W, targets[0]), (params.WV, targets[1]), (params.WK, targets[1])):
        assert abs(w.std() - sd) < 5 * sd / np.sqrt(w.size)
    assert set(np.unique(params.a)) == {-1.0, 1.0}
    assert abs(params.a.sum()) < 5 * np.sqrt(m1)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="init='xavier'"):
        init_params(10, 4, 4, seed=0, init="xavier")
    with pytest.raises(ValueError, match="sigma0=None"):
        init_params(10, 4, 4, seed=0)
    with pytest.raises(ValueError, match="m1=0"):
        init_params(10, 4, 0, seed=0, sigma0=0.1, sigma1=0.1)
    with pytest.raises(ValueError, match="scale=0"):
        condition1_sigmas(4, 8, 8, scale=0)
    data = sample_training_set(6, 3, 10, seed=0)
    params = init_params(10, 4, 4, seed=0, sigma0=0.1, sigma1=0.1)
    with pytest.raises(ValueError, match="lr=-0.1"):
        train(params, data, lr=-0.1, steps=3)
    with pytest.raises(ValueError, match="steps=0"):
        record_steps(0)


@pytest.fixture(scope="module")
def runs():
    """Five seeds of gradient descent (lr 0.05, 3000 steps: t = 150) in the default regime."""
    out = []
    for seed in SEEDS:
        data = sample_training_set(N, L, D, seed=seed)
        s0, s1 = condition1_sigmas(L, M, M1, SCALE)
        params0 = init_params(D, M, M1, seed=100 + seed, sigma0=s0, sigma1=s1)
        params, history = train(params0, data, LR, STEPS, record=record_steps(STEPS, 100))
        out.append((data, params0, params, history))
    return out


@pytest.mark.slow
def test_initial_output_is_small(runs):
    """Lemma D.8's regime: |F^(0)| <= 0.05 on every training sample."""
    for data, params0, _, _ in runs:
        assert np.abs(forward(params0, data).F).max() < 0.05


@pytest.mark.slow
def test_phase1_theorem_3_1(runs):
    """Theorem 3.1: Phase 1 ends with every sample classified, G(mu_1), G(mu_2) > 0 >
    G(mu_3), while the attention is still essentially uniform and the loss still Theta(1);
    the one-target losses first rise (Lemma 4.2, Figure 1(b))."""
    for _, _, _, h in runs:
        T1 = phase_times(h)["T1"]
        assert np.isfinite(T1)
        k = np.searchsorted(h["t"], T1)
        assert h["loss"][k] > 0.1 * h["loss"][0]
        assert h["attn_dev"][k] < 1e-3
        peak = h["type_loss"][:k, 1:3].max(axis=0)
        assert np.all(peak > h["type_loss"][0, 1:3] + 0.01)
        assert np.all(h["type_loss"][:k, 0] <= h["type_loss"][0, 0] + 1e-12)


@pytest.mark.slow
def test_theorem_3_2_signs(runs):
    """Theorem 3.2, over Phase 2 (T1 to the end), every seed: scores mu_2<-mu_1 and
    mu_1<-mu_2 rise, mu_3<-mu_1 and mu_3<-mu_2 fall (key <- query); the value Gram entry
    (1,2) rises, (1,3) and (2,3) fall; the AND margins G1+G2+G3 > 0, G1+G3 < 0, G2+G3 < 0."""
    for data, params0, params, h in runs:
        k = np.searchsorted(h["t"], phase_times(h)["T1"])
        dA = h["scores"][-1] - h["scores"][k]
        assert np.all(np.sign(dA[:4]) == [1, 1, -1, -1])
        dgram = h["gram"][-1] - h["gram"][k]
        assert np.all(np.sign(dgram[:3]) == [1, -1, -1])
        G = word_values(params, data.embeddings)
        assert G[0] + G[1] + G[2] > 1 and G[0] + G[2] < -1 and G[1] + G[2] < -1
        # Theorem 3.3's coefficients: the four named ones dominate the random-word ones
        C = score_matrix(params, data.embeddings) - score_matrix(params0, data.embeddings)
        named = np.abs([C[0, 1], C[1, 0], C[2, 0], C[2, 1]]).min()
        assert np.abs(C[3:, 3:]).max() < named


@pytest.mark.slow
def test_automatic_balancing(runs):
    """Lemma 4.4: in Phase 2 |S_I2 - S_I3| / min(S_I2, S_I3) <= C with C << 1 (we take the
    constant C = 0.1); Definition F.1's gradient ordering S_I4 <= S_I2, S_I3 <= S_I1 <=
    S_I2+S_I3+S_I4; Lemma 4.5: dG(mu_1)/dG(mu_2) = Theta(1) (within [1/2, 2]); per-sample
    derivatives within each type within a factor 2."""
    for _, _, _, h in runs:
        k = np.searchsorted(h["t"], phase_times(h)["T1"])
        assert h["lemma44"][k:].max() <= 0.1
        S = h["S"][k:]
        assert np.all(S[:, 3] <= np.minimum(S[:, 1], S[:, 2]))
        assert np.all(np.maximum(S[:, 1], S[:, 2]) <= S[:, 0])
        assert np.all(S[:, 0] <= S[:, 1:].sum(axis=1))
        ratio = h["Gdot"][k:, 0] / h["Gdot"][k:, 1]
        assert np.all((ratio > 0.5) & (ratio < 2))
        # per sample: entries of one type share their margin velocity up to random-word
        # terms, so max g / min g within each type stays below 2 throughout Phase 2
        assert h["g_ratio_type"][k:].max() < 2


@pytest.mark.slow
def test_phase2_inverse_loss_rate_is_proportional_to_kappa(runs):
    """Theorem F.8's mechanism, the rate law d(1/L)/dt = Theta(||W^T a||^2): late in Phase 2
    the measured d(1/L)/dt divided by ||W^T a||^2 stays within a factor 2 over a 5-fold time
    span.  (This is not the 1/t law: kappa itself grows, see the next test.)"""
    for _, _, _, h in runs:
        rate = phase2_loss_rate(h)
        late = rate["t"] >= 20
        assert rate["inv_rate"][late].max() < 2 * rate["inv_rate"][late].min()
        assert rate["t"][late][-1] > 5 * rate["t"][late][0]


@pytest.mark.slow
def test_phase2_loss_decays_like_one_over_t_log_t(runs):
    """The late-time law (our proposition): the local exponent d log L / d log t follows
    -l e^{-l} Ei(l), l = log(1/L), not -1.  Over t in [50, 150] the measured exponent is below
    -1.05 (the 1/t law is rejected); its distance to the prediction is the law's transient,
    which decays like 1/t, so over this 3-fold span it must shrink by at least half, and at
    t = 150 it must be below a quarter of the predicted correction -l e^{-l} Ei(l) + 1."""
    for _, _, _, h in runs:
        rate = phase2_loss_rate(h)
        t, loss_ = h["t"][h["t"] > 0], h["loss"][h["t"] > 0]
        mid_loss = np.sqrt(loss_[1:] * loss_[:-1])
        assert len(mid_loss) == len(rate["t"]) and len(t) == len(loss_)
        late = rate["t"] >= 50
        predicted = log_growth_exponent(mid_loss[late])
        measured = rate["slope"][late]
        assert np.all(measured < -1.05)
        gap = np.abs(measured - predicted)
        assert gap[-1] < 0.5 * gap[0]
        assert gap[-1] < 0.25 * abs(predicted[-1] + 1)
        # the mechanism: kappa tracks sqrt(m1) ||G|| (all words) to within 1% late in training
        k = h["t"] >= 50
        np.testing.assert_allclose(h["u_norm2"][k], np.sqrt(M1 * h["G_norm2"][k]), rtol=1e-2)


@pytest.mark.slow
def test_generalization(runs):
    """Theorem 3.3: the generalization loss becomes small too.  Estimated on 2000 fresh
    entries of D, it must end below 5% of its initial value (about ln 2).  Not 1/poly(m): each
    random word is seen once in training and keeps a label-correlated value G, which fresh
    entries inherit at random (|F(X) - F(X*)| <= O(1) in the paper's argument)."""
    for seed, (data, params0, params, _) in enumerate(runs):
        test = sample_distribution(2000, L, D, seed=1000 + seed, embeddings=data.embeddings)
        assert loss(params, test) < 0.05 * loss(params0, test)


def test_uniform_attention_flow_matches_frozen_attention_training():
    """With W_K = W_Q = 0 attention is exactly uniform and stays so (their gradients vanish),
    so gradient descent must follow the reduced flow; the Euler step adds an O(lr) error,
    so lr = 1e-3 over t = 3 leaves a discrepancy of order 1e-3 relative."""
    data = sample_training_set(N, L, D, seed=7)
    s0, s1 = condition1_sigmas(L, M, M1, 0.3)
    p0 = init_params(D, M, M1, seed=8, sigma0=s0, sigma1=s1)
    p0 = Params(W=p0.W, WV=p0.WV, WK=np.zeros_like(p0.WK), WQ=np.zeros_like(p0.WQ), a=p0.a)
    steps = 3000
    _, h = train(p0, data, 1e-3, steps, record=[0, steps // 2, steps])
    flow = uniform_attention_flow(p0, data, h["t"])
    np.testing.assert_allclose(flow["G"], h["G"], rtol=5e-3, atol=1e-3)
    np.testing.assert_allclose(flow["u_norm2"], h["u_norm2"], rtol=5e-3)


def test_special_word_flow_starts_at_kappa_d_and_scales_with_kappa_at_m1_zero():
    """At t = 0, g = 1/2 on every type, so D = (1/6, 1/6, 0) and dG/dt = kappa(0) D: the
    type-2 margin -(G1 + G3) falls and types 2 and 3 stay alike.  At m1 = 0 kappa is constant
    and the flow depends on kappa t alone."""
    t = np.array([0.0, 1e-4])
    flow = special_word_flow(0.39, 256, t)
    np.testing.assert_allclose(flow["G"][1] / 1e-4, 0.39 * np.array([1 / 6, 1 / 6, 0]),
                               rtol=1e-3, atol=1e-5)
    later = special_word_flow(0.39, 256, np.linspace(0, 1, 11))
    np.testing.assert_allclose(later["type_loss"][:, 1], later["type_loss"][:, 2], rtol=1e-6)
    assert later["type_loss"][5, 1] > np.log(2)  # the bump
    slow = special_word_flow(0.5, 0, np.linspace(0, 4, 5))
    fast = special_word_flow(1.0, 0, np.linspace(0, 2, 5))
    np.testing.assert_allclose(slow["G"], fast["G"], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(slow["u_norm2"], 0.5)
    with pytest.raises(ValueError, match="kappa0"):
        special_word_flow(0.0, 256, t)


def test_analytic_gradients_match_autograd_with_noise_tokens():
    """The closed forms hold for any token vectors, not only orthonormal words: with the
    Gaussian noise tokens of with_noise_tokens (d x (3 + slots) embeddings, not orthonormal),
    the analytic gradients still match autograd of Eq. 1."""
    data = with_noise_tokens(sample_training_set(12, 4, 10, seed=0, random_tokens="iid"), 1)
    assert data.n_vectors > data.d
    _assert_gradients_match_autograd(init_params(10, 8, 6, seed=3, sigma0=0.4, sigma1=0.4), data)


def _small_data(kind: str):
    """A small training set and test set with one-hot words (E = I), Haar-random orthonormal
    word vectors, or Gaussian noise tokens (d x (3 + slots) token vectors)."""
    if kind == "noise":
        base = sample_training_set(12, 4, 10, seed=0, random_tokens="iid")
        test = sample_distribution(30, 4, 10, seed=1, embeddings=base.embeddings)
        return with_noise_tokens(base, 1), with_noise_tokens(test, 2)
    data = sample_training_set(12, 4, 30, seed=0, embedding_kind=kind)
    return data, sample_distribution(30, 4, 30, seed=1, embeddings=data.embeddings)


@pytest.mark.parametrize("kind", ["onehot", "random", "noise"])
def test_forward_matches_the_dense_definition(kind):
    """forward (scores looked up per word pair, laid out keys first) against Eq. 1 written
    with the dense X = E[:, tokens]: s_l = X^T W_K^T W_Q x_l / sqrt(m), softmax over keys h."""
    data, _ = _small_data(kind)
    params = init_params(data.d, 8, 6, seed=3, sigma0=0.4, sigma1=0.4)
    X = data.X
    S = np.einsum("idh,md,me,iel->ilh", X, params.WK, params.WQ, X) / np.sqrt(params.m)
    P = np.exp(S) / np.exp(S).sum(axis=2, keepdims=True)
    F = np.einsum("ilh,ih->i", P, params.u @ params.WV @ X)
    fwd = forward(params, data)
    assert np.abs(fwd.P - 1 / data.L).max() > 0.05  # far from uniform: the softmax matters
    np.testing.assert_allclose(fwd.P, P, rtol=1e-12)
    np.testing.assert_allclose(fwd.F, F, rtol=1e-12)
    np.testing.assert_allclose(fwd.K_tok, params.WK @ data.embeddings, rtol=1e-15)


@pytest.mark.parametrize("kind", ["onehot", "random", "noise"])
def test_train_equals_steps_by_hand_bit_for_bit(kind):
    """train prepares the tokens once and updates with the velocities -grad in place; that
    must not change a bit: three steps by hand with forward, gradients and loss give the
    same weights and the same recorded loss, test loss, Gdot and G."""
    data, test = _small_data(kind)
    params0 = init_params(data.d, 8, 6, seed=3, sigma0=0.4, sigma1=0.4)
    lr, steps = 0.3, 3
    end, h = train(params0, data, lr, steps, record=range(steps + 1), test=test)
    E, p = data.embeddings, params0
    for step in range(steps + 1):
        fwd = forward(p, data)
        grads = gradients(p, data, fwd)
        Gdot = -(grads["W"].T @ p.a) @ fwd.V_tok[:, :3] - p.u @ grads["WV"] @ E[:, :3]
        assert h["loss"][step] == logistic_loss(data.y * fwd.F).mean()
        assert h["test_loss"][step] == loss(p, test)
        assert np.array_equal(h["Gdot"][step], Gdot)
        assert np.array_equal(h["G"][step], word_values(p, E)[:3])
        if step < steps:
            p = Params(**{k: getattr(p, k) - lr * grads[k] for k in Params.TRAINABLE}, a=p.a)
    for k in Params.TRAINABLE:
        assert np.array_equal(getattr(end, k), getattr(p, k)), k
    assert not np.array_equal(end.WK, params0.WK)  # the steps moved the attention weights
    assert not np.shares_memory(end.WK, params0.WK)
