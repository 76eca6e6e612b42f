"""A DeepAR-style network in torch (global autoregressive RNN with a likelihood head).

Salinas et al. (2020), "DeepAR: probabilistic forecasting with autoregressive recurrent networks":
one LSTM across all series. At each step its input is the scaled lagged target (lags 1, 2, 3 and
the seasonal lags m, 2m, 3m, each with an "observed" flag, so series shorter than the context are
padded rather than dropped), the known covariates, calendar features (sin/cos), holiday proximity,
embeddings of the static categories and of the nearest holiday, and the log of the series scale.
Its output parameterises a Student-t on the scaled target; training maximises the likelihood on
random windows (context + horizon) with teacher forcing. Prediction runs the network over each
series' context, then samples paths ancestrally (the sampled value becomes the next step's lag),
batched across series; quantiles and the mean come from the samples.

Scale per series (DeepAR's): mean |y| over the context window + 1; targets and lags are divided
by it and forecasts multiplied back.

Two deviations from the paper, both measured on the seed benchmark (lower wQL): the lags are
1, 2, 3, m, 2m, 3m rather than 1, m, 2m (the paper's lag sets are longer still), and the
Student-t location has a linear skip from the step's inputs (LSTNet's "highway"): retail series
scaled by their mean sit near 1 with changes of a few per cent, and an exact linear combination
of lags is hard for an LSTM to learn in a few hundred steps, easy for a linear term. Training
cost is bounded by a fixed number of steps (not by the data size); prediction is batched across
series in chunks of at most `chunk_rows` sample paths.

Reproducible: fitting runs on a forked torch RNG seeded from config.seed (window draws from a
numpy generator with the same seed). Sampling maps uniforms through the Student-t inverse CDF;
each series draws its uniforms from its own stream seeded by (config.seed, series id), so a
fitted model always predicts the same numbers, and an item's forecast does not depend on which
other items share the request (the real-time endpoint and batch agree). The fitted weights are
kept as a CPU state_dict (no optimizer), so joblib artifacts load and predict identically.

Optional: the core install does not need torch; without it `deepar` maps to the LightGBM stand-in.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import threading
import zlib

import numpy as np
import pandas as pd

from ..calendar import PROXIMITY_CAP, HolidayFeaturizer, calendar_features
from .base import Candidate

# period of each calendar feature, for its sin/cos encoding
_CAL_PERIODS = {
    "minute": 60,
    "hour": 24,
    "day_of_week": 7,
    "day_of_month": 31,
    "day_of_year": 366,
    "week_of_year": 53,
    "month": 12,
}


Z_CLIP = 50.0  # sampled scaled values (y / mean |y|) beyond this are clipped


def _context_length(horizon: int, m: int) -> int:
    return int(min(max(4 * horizon, 2 * m + horizon, 30), 400))


def _lags(m: int, extended: bool) -> list:
    if m <= 1:
        return [1, 2, 3]
    return sorted({1, 2, 3, m, 2 * m, 3 * m}) if extended else [1, m, 2 * m]


def _embedding_dim(n: int) -> int:
    return int(min(8, max(2, math.ceil(math.sqrt(n)))))


_TORCH_STATE = threading.Lock()  # torch's thread count and RNG are process-wide: one session at a time


def _new_lock_in_child():
    """A process forked while another thread held the lock would wait on it forever."""
    global _TORCH_STATE
    _TORCH_STATE = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


@contextlib.contextmanager
def _torch_session(seed: int, threads: int):
    """Own thread count and a forked, seeded RNG: no side effects on the caller's torch state.

    Sessions take turns (the endpoint predicts on several threads): two interleaved sessions
    would restore each other's thread count and RNG state in the wrong order."""
    with _TORCH_STATE:
        with _torch_session_unlocked(seed, threads) as torch:
            yield torch


@contextlib.contextmanager
def _torch_session_unlocked(seed: int, threads: int):
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            yield torch
    finally:
        torch.set_num_threads(old)


def _build_net(n_real: int, cardinalities: list, hidden: int, layers: int, dropout: float, skip: bool):
    import torch
    from torch import nn

    class DeepARNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = nn.ModuleList(nn.Embedding(n, _embedding_dim(n)) for n in cardinalities)
            n_in = n_real + sum(_embedding_dim(n) for n in cardinalities)
            self.rnn = nn.LSTM(
                n_in, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0
            )
            self.head = nn.Linear(hidden, 3)
            # linear autoregressive skip (LSTNet's highway): loc = linear(lags, features) + LSTM part
            self.skip = nn.Linear(n_real, 1) if skip else None

        def forward(self, real, cats, state=None):
            parts = [real] + [emb(cats[..., k]) for k, emb in enumerate(self.embeddings)]
            out, state = self.rnn(torch.cat(parts, dim=-1), state)
            raw = self.head(out)
            df = 2.0 + nn.functional.softplus(raw[..., 0])
            loc = raw[..., 1] if self.skip is None else raw[..., 1] + self.skip(real)[..., 0]
            scale = nn.functional.softplus(raw[..., 2]) + 1e-3
            return (df, loc, scale), state

    return DeepARNet()


class DeepAR(Candidate):
    name = "DeepAR"
    relative_cost = 7  # a global model (Candidate.is_global): one fit before the oldest window

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("torch") is not None

    @classmethod
    def default_params(cls, config):
        # steps None: 1000 for windows of up to 70 periods (daily, horizon 14), fewer for longer
        # windows (each step costs ~ the window length), so fitting stays ~20-40 s on a busy core
        return {
            "hidden": 40,
            "layers": 2,
            "dropout": 0.0,
            "steps": None,
            "batch_size": 64,
            "learning_rate": 2e-3,
            "num_samples": 200,
            "context_length": None,
            "num_threads": 1,
            "chunk_rows": 40_000,
            "linear_skip": True,
            "extended_lags": True,
            "seed": config.seed,
        }

    # --- state for pickling: the network is rebuilt from the state_dict ----------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_net", None)
        return state

    def __setstate__(self, state):
        """Rebuilt when loaded, not lazily at the first prediction: predictions only read the model."""
        self.__dict__.update(state)
        if "state" in state:
            p = self.params
            with _torch_session(p["seed"], p["num_threads"]):  # building draws from torch's RNG
                self._net = self._build_fitted()

    # --- features ------------------------------------------------------------------------
    def _time_features(self, ds: np.ndarray, X: np.ndarray):
        """Rows -> (real features without lags and scale, categorical holiday code).

        Dates repeat across series: calendar and holiday features are computed once per distinct
        timestamp and gathered, and the output is float32 filled in place (2,500 series x 3
        years would otherwise hold several float64 copies of every feature).
        """
        dates, inverse = np.unique(ds, return_inverse=True)
        cal = calendar_features(dates, self.unit)
        hol = self.holidays.transform(dates)
        n_cov = len(self.cov_mean)
        width = n_cov + 2 * len(cal) + (2 if hol else 0)
        real = np.empty((len(ds), width), dtype=np.float32)
        if n_cov:
            real[:, :n_cov] = (np.nan_to_num(X) - self.cov_mean) / self.cov_std
        col = n_cov
        for name, value in cal.items():
            angle = 2 * np.pi * value / _CAL_PERIODS.get(name, 12)
            real[:, col] = np.sin(angle).astype(np.float32)[inverse]
            real[:, col + 1] = np.cos(angle).astype(np.float32)[inverse]
            col += 2
        if hol:
            real[:, col] = (hol["days_to_holiday"] / PROXIMITY_CAP).astype(np.float32)[inverse]
            real[:, col + 1] = (hol["days_since_holiday"] / PROXIMITY_CAP).astype(np.float32)[inverse]
            code = hol["nearest_holiday"]
            code = np.where(np.isfinite(code), code + 1, 0).astype(np.int64)[inverse]
        else:
            code = np.zeros(len(ds), dtype=np.int64)
        return real, code

    def _static_codes(self, static: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(static), len(self.static_columns)), dtype=np.int64)
        for j, c in enumerate(self.static_columns):
            values = static[c].astype(str) if c in static.columns else pd.Series(["nan"] * len(static))
            cats = pd.Categorical(values, categories=self.static_categories[c])
            out[:, j] = cats.codes.astype(np.int64) + 1  # unknown (-1) -> the reserved 0
        return out

    def _inputs(self, lag_vals, lag_ok, exog, log_scale):
        """Assemble real inputs (..., T, F): lags, their observed flags, exogenous, log scale."""
        return np.concatenate(
            [lag_vals, lag_ok, exog, np.broadcast_to(log_scale, lag_vals.shape[:-1] + (1,))], axis=-1
        ).astype(np.float32)

    # --- fit -------------------------------------------------------------------------------
    def _fit(self, train):
        p = self.params
        cfg = self.config
        self.m = cfg.season_length
        self.unit = cfg.frequency_unit
        H = cfg.horizon
        self.C = int(p["context_length"] or _context_length(H, self.m))
        self.lags = _lags(self.m, bool(p["extended_lags"]))
        self.covariate_names = list(train.covariate_names)
        X = np.nan_to_num(train.X.astype(float))
        self.cov_mean = X.mean(axis=0) if X.shape[1] else np.zeros(0)
        std = X.std(axis=0) if X.shape[1] else np.zeros(0)
        self.cov_std = np.where(std > 1e-9, std, 1.0)
        self.static_columns = list(train.static.columns)
        self.static_categories = {c: sorted(train.static[c].astype(str).unique()) for c in self.static_columns}
        self.holidays = HolidayFeaturizer(cfg.holiday_country if self.unit in ("D", "H", "min") else None)
        self.holidays.fit(train.ds)

        exog, hcode = self._time_features(train.ds, train.X)
        lengths = train.lengths
        starts = train.indptr[:-1]
        y = train.y.astype(float)
        # log-scale normalisation from each series' last context
        tail_scale = np.array(
            [np.nanmean(np.abs(y[max(s, e - self.C) : e])) if e > s else 0.0 for s, e in zip(starts, train.indptr[1:])]
        )
        log_tail = np.log(np.nan_to_num(tail_scale) + 1.0)
        self.log_scale_mean = float(log_tail.mean()) if len(log_tail) else 0.0
        self.log_scale_std = float(log_tail.std()) if len(log_tail) > 1 and log_tail.std() > 1e-6 else 1.0
        cardinalities = [len(self.holiday_names_or_empty()) + 1] + [
            len(self.static_categories[c]) + 1 for c in self.static_columns
        ]
        static_codes = self._static_codes(train.static)
        n_lags = len(self.lags)
        self.n_real = 2 * n_lags + exog.shape[1] + 1
        self.cardinalities = cardinalities

        T = self.C + H
        steps = int(p["steps"]) if p["steps"] is not None else int(max(250, round(1000 * min(1.0, 70 / T))))
        self.steps = steps
        row_series = np.repeat(np.arange(train.n_series), lengths)
        pos = np.arange(len(y)) - np.repeat(starts, lengths)
        eligible = np.flatnonzero((pos >= np.minimum(H, np.repeat(lengths, lengths) - 1)) & (pos >= 1))
        if not len(eligible):
            raise ValueError("DeepAR: no training series has at least two periods")
        rng = np.random.default_rng(int(p["seed"]))
        offs = np.arange(T) - (T - 1)

        with _torch_session(p["seed"], p["num_threads"]) as torch:
            net = _build_net(
                self.n_real,
                cardinalities,
                int(p["hidden"]),
                int(p["layers"]),
                float(p["dropout"]),
                bool(p["linear_skip"]),
            )
            opt = torch.optim.Adam(net.parameters(), lr=float(p["learning_rate"]))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=max(steps, 1), eta_min=float(p["learning_rate"]) / 10
            )
            net.train()
            for _step in range(steps):
                self.check_time()
                ends = eligible[rng.integers(0, len(eligible), size=int(p["batch_size"]))]
                sid = row_series[ends]
                st = starts[sid][:, None]
                rel = pos[ends][:, None] + offs[None, :]  # (B, T) position in series
                valid = rel >= 0
                rows = np.where(valid, st + rel, 0)
                target = np.where(valid, y[rows], np.nan)
                lag_vals, lag_ok = [], []
                for lag in self.lags:
                    r = rel - lag
                    v = np.where(r >= 0, y[np.where(r >= 0, st + r, 0)], np.nan)
                    lag_ok.append(np.isfinite(v))
                    lag_vals.append(v)
                ctx = np.abs(target[:, : self.C])
                cnt = np.isfinite(ctx).sum(axis=1)
                whole = np.abs(np.nan_to_num(target))
                n_whole = np.isfinite(target).sum(axis=1)
                scale = np.where(
                    cnt > 0, np.nansum(ctx, axis=1) / np.maximum(cnt, 1), whole.sum(axis=1) / np.maximum(n_whole, 1)
                )
                scale = np.nan_to_num(scale) + 1.0
                lv = np.nan_to_num(np.stack(lag_vals, -1) / scale[:, None, None])
                lo = np.stack(lag_ok, -1).astype(float)
                ex = np.where(valid[..., None], exog[rows], 0.0)
                ls = ((np.log(scale) - self.log_scale_mean) / self.log_scale_std)[:, None, None]
                real = self._inputs(lv, lo, ex, ls)
                cats = np.concatenate(
                    [
                        np.where(valid, hcode[rows], 0)[..., None],
                        np.broadcast_to(static_codes[sid][:, None, :], (len(sid), T, static_codes.shape[1])),
                    ],
                    axis=-1,
                )
                z = target / scale[:, None]
                mask = np.isfinite(z)
                (df, loc, sc), _ = net(torch.from_numpy(real), torch.from_numpy(np.ascontiguousarray(cats)))
                dist = torch.distributions.StudentT(df, loc, sc)
                zt = torch.from_numpy(np.nan_to_num(z).astype(np.float32))
                mt = torch.from_numpy(mask.astype(np.float32))
                loss = -(dist.log_prob(zt) * mt).sum() / mt.sum().clamp(min=1.0)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
                opt.step()
                sched.step()
            self.final_loss = float(loss.detach())
            self.state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        net.eval()
        self._net = net

    def holiday_names_or_empty(self) -> list:
        return list(self.holidays.names) if self.holidays.country else []

    def _build_fitted(self):
        p = self.params
        net = _build_net(
            self.n_real,
            self.cardinalities,
            int(p["hidden"]),
            int(p["layers"]),
            float(p["dropout"]),
            bool(p["linear_skip"]),
        )
        net.load_state_dict(self.state)
        net.eval()
        return net

    # --- predict ---------------------------------------------------------------------------
    def _uniforms(self, uids, n_samples: int, horizon: int) -> np.ndarray:
        """(len(uids) * n_samples, horizon) uniforms, seeded by config seed and series id.

        Each series draws from its own stream, so an item's forecast does not depend on which
        other items share the request: the real-time endpoint and batch agree.
        """
        seed = int(self.params["seed"])
        out = np.empty((len(uids) * n_samples, horizon))
        for k, uid in enumerate(uids):
            rng = np.random.default_rng([seed, zlib.crc32(str(uid).encode())])
            out[k * n_samples : (k + 1) * n_samples] = rng.random((n_samples, horizon))
        return np.clip(out, 1e-6, 1 - 1e-6)

    def _predict(self, history, future):
        p = self.params
        S = history.n_series
        H = int(future.lengths.max(initial=0))
        nq = len(self.config.quantiles)
        out = np.zeros((S, H, nq + 1))
        if S == 0 or H == 0:
            return out
        C, P = self.C, max(self.lags)
        nf = future.lengths
        # target buffer: P + C history values right-aligned, then H future slots (NaN)
        L = P + C + H
        ybuf = np.full((S, L), np.nan)
        seq_rows_h = np.full((S, C), -1)
        for i in range(S):
            yi = history.series_y(i)
            k = min(len(yi), P + C)
            ybuf[i, P + C - k : P + C] = yi[len(yi) - k :]
            kc = min(len(yi), C)
            seq_rows_h[i, C - kc :] = np.arange(history.indptr[i + 1] - kc, history.indptr[i + 1])
        ctx = np.abs(ybuf[:, P : P + C])
        cnt = np.isfinite(ctx).sum(axis=1)
        scale = np.nan_to_num(np.nansum(ctx, axis=1) / np.maximum(cnt, 1)) + 1.0
        zbuf = ybuf / scale[:, None]

        # exogenous features over the C + H steps
        valid_h = seq_rows_h >= 0
        rows_h = seq_rows_h[valid_h]  # only the context rows, not all history
        exog_v, code_v = self._time_features(history.ds[rows_h], history.X[rows_h])
        exog_f, code_f = self._time_features(future.ds, future.X)
        ex_ctx = np.zeros((S, C, exog_f.shape[1]), dtype=np.float32)
        ex_ctx[valid_h] = exog_v
        cd_ctx = np.zeros((S, C), dtype=np.int64)
        cd_ctx[valid_h] = code_v
        fut_rows = np.zeros((S, H), dtype=int)
        for i in range(S):
            k = int(nf[i])
            r = np.arange(future.indptr[i], future.indptr[i] + max(k, 1))
            fut_rows[i] = r[np.minimum(np.arange(H), max(k, 1) - 1)] if k else future.indptr[i]
        has_fut = len(exog_f) > 0
        ex_fut = exog_f[np.minimum(fut_rows, max(len(exog_f) - 1, 0))] if has_fut else np.zeros((S, H, ex_ctx.shape[2]))
        cd_fut = code_f[np.minimum(fut_rows, max(len(code_f) - 1, 0))] if has_fut else np.zeros((S, H), np.int64)
        static_codes = self._static_codes(history.static)
        ls = ((np.log(scale) - self.log_scale_mean) / self.log_scale_std)[:, None, None]

        # context inputs (teacher forced): step t of the context reads buffer positions P + t - lag
        t_ctx = P + np.arange(C)
        lv = np.stack([zbuf[:, t_ctx - lag] for lag in self.lags], -1)
        lo = np.isfinite(lv).astype(float)
        real_ctx = self._inputs(np.nan_to_num(lv), lo, ex_ctx, ls)
        cats_ctx = np.concatenate(
            [cd_ctx[..., None], np.broadcast_to(static_codes[:, None, :], (S, C, static_codes.shape[1]))], -1
        )
        N = int(p["num_samples"])
        levels = np.asarray(self.config.quantile_levels, float)
        chunk = max(1, int(p["chunk_rows"]) // N)
        from scipy.special import stdtrit  # Student-t inverse CDF

        with _torch_session(p["seed"], p["num_threads"]) as torch:
            net = self._net
            torch.manual_seed(int(p["seed"]))  # as before networks were rebuilt when loaded
            with torch.no_grad():
                for a in range(0, S, chunk):
                    self.check_time()
                    b = min(S, a + chunk)
                    n = b - a
                    _, state = net(
                        torch.from_numpy(real_ctx[a:b]), torch.from_numpy(np.ascontiguousarray(cats_ctx[a:b]))
                    )
                    # N sample paths per series: rows a*N .. b*N, series-major
                    state = tuple(s.repeat_interleave(N, dim=1) for s in state)

                    def per_path(arr, dtype=np.float32):
                        return torch.from_numpy(np.ascontiguousarray(arr, dtype=dtype)).repeat_interleave(N, dim=0)

                    paths = per_path(zbuf[a:b])
                    u = self._uniforms(history.uids[a:b], N, H)
                    ex_f = per_path(ex_fut[a:b])
                    ls_f = per_path(np.broadcast_to(ls[a:b], (n, 1, 1)))
                    cats_f = per_path(
                        np.concatenate(
                            [
                                cd_fut[a:b][..., None],
                                np.broadcast_to(static_codes[a:b, None, :], (n, H, static_codes.shape[1])),
                            ],
                            -1,
                        ),
                        np.int64,
                    )
                    for h in range(H):
                        self.check_time()
                        t = P + C + h
                        lagv = torch.stack([paths[:, t - lag] for lag in self.lags], -1)
                        ok = torch.isfinite(lagv)
                        real = torch.cat([torch.nan_to_num(lagv), ok.float(), ex_f[:, h], ls_f[:, 0]], -1)[:, None, :]
                        (df, loc, sc), state = net(real, cats_f[:, h : h + 1], state)
                        # inverse-CDF sampling from per-series uniforms (see _uniforms)
                        q = stdtrit(df[:, 0].double().numpy(), u[:, h])
                        sample = loc[:, 0] + sc[:, 0] * torch.from_numpy(q.astype(np.float32))
                        # heavy tails fed back as lags can run away: keep paths within a wide band
                        paths[:, t] = sample.clamp(-Z_CLIP, Z_CLIP)
                    z = paths[:, P + C :].reshape(n, N, H).double().numpy()
                    samples = z * scale[a:b, None, None]
                    out[a:b, :, :nq] = np.moveaxis(np.quantile(samples, levels, axis=1), 0, -1)
                    out[a:b, :, nq] = samples.mean(axis=1)
        for i in range(S):
            k = int(nf[i])
            if 0 < k < H:
                out[i, k:] = out[i, k - 1]
        return out
