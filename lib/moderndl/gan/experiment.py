"""The chapter's experiment: data, a DCGAN on the art, CycleGAN from photos to art over
seeds, their measurements, and the claims. The notebook calls these one by one and draws
the figures; ``python -m moderndl.gan`` calls :func:`experiment`.

Every measurement of style uses the colour-aware SWD (``swd.COLOUR``: both sets normalised
by the held-out art's statistics) against *held-out* data: art drawn from other seeds, and
crops of photographs that training never sees (``photos.HELD_OUT``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch

from moderndl import measure, parallel
from moderndl.gan import art, colour, cyclegan, dcgan, photos, style, swd
from moderndl.gan.pixels import to_model, to_uint8
from moderndl.profiles import Settings
from moderndl.seed import set_seed
from moderndl.train import TrainConfig

# Targets for the laptop profile, fixed before any run (see the notebook's Claims section)
CONFIDENCE = 0.9  # the style classifier's probability for a sample to count as one style
CONFIDENT_SHARE = 0.8  # ... for at least this fraction of samples
SHARE_POINTS = 15.0  # each style's share among samples within this many points of the data's
FLOOR_FACTOR = 2.0  # DCGAN's SWD to held-out art within this multiple of the art-vs-art floor
CYCLE_L1 = 0.1  # mean |F(G(x)) - x| on the [-1, 1] scale


@dataclass
class Data:
    """Both domains at both sizes, for training and held out."""

    art_dcgan: torch.Tensor  # (N, 3, s_d, s_d) uint8: DCGAN's training art
    art_train: torch.Tensor  # (N, 3, s_c, s_c): CycleGAN's art domain
    photo_train: torch.Tensor  # crops of the 15 training photographs
    art_eval: torch.Tensor  # held-out art at s_c: the reference of every CycleGAN SWD
    art_eval2: torch.Tensor  # a second held-out draw: the art-vs-art floor
    photo_eval: torch.Tensor  # crops of the 5 held-out photographs
    art_eval_dcgan: torch.Tensor  # held-out art at s_d, and a second draw for its floor
    art_eval_dcgan2: torch.Tensor
    classifier_art: torch.Tensor | None  # held-out labelled art for the style classifier (None for a user folder)
    classifier_labels: torch.Tensor | None


def load_data(s: Settings, seed: int) -> Data:
    """Training and held-out sets; held-out art comes from other seeds of the generator."""
    sd, sc, n, m = s.dcgan_image_size, s.cyclegan_image_size, s.n_images, s.swd_images
    art_dcgan = art.load(n, sd, folder=s.art_folder, seed=seed)
    art_train = art_dcgan if sc == sd else art.load(n, sc, folder=s.art_folder, seed=seed)
    photo_train = photos.load(n, sc, folder=s.photo_folder, seed=seed)
    if s.art_folder:  # a user's paintings: no second source, so the metric reuses the training images
        art_eval = art_eval2 = art_train[:m]
        art_eval_dcgan = art_eval_dcgan2 = art_dcgan[:m]
        classifier_art = classifier_labels = None
    else:
        art_eval, art_eval2 = art.generate(m, sc, seed=seed + 101), art.generate(m, sc, seed=seed + 102)
        art_eval_dcgan = art.generate(m, sd, seed=seed + 104)
        art_eval_dcgan2 = art.generate(m, sd, seed=seed + 105)
        classifier_art = art.generate(s.classifier_images, sd, seed=seed + 106)
        classifier_labels = style.labels_of(s.classifier_images)
    photo_eval = (photo_train[:m] if s.photo_folder
                  else photos.random_crops(m, sc, seed=seed + 103, which="held_out"))
    return Data(art_dcgan, art_train, photo_train, art_eval, art_eval2, photo_eval, art_eval_dcgan,
                art_eval_dcgan2, classifier_art, classifier_labels)


def swd_config(s: Settings) -> swd.SWDConfig:
    """The colour-aware SWD at this profile's sample size."""
    return replace(swd.COLOUR, patches_per_image=s.swd_patches, repeats=s.swd_repeats)


def style_distance(x: torch.Tensor, reference: torch.Tensor, s: Settings, seed: int) -> dict:
    """Colour-aware SWD x 1e3 of ``x`` to the ``reference`` art (per level and mean)."""
    return swd.swd(x, reference, seed=seed, config=swd_config(s))


def train_config(s: Settings, steps: int, desc: str, checkpoint_dir: Path | None = None) -> TrainConfig:
    cpu = s.device.type == "cpu"
    return TrainConfig(steps=steps, log_every=10, checkpoint_dir=checkpoint_dir, mixed_precision=s.mixed_precision,
                       compile=s.compile, cpu=cpu, desc=desc)


# -- DCGAN --------------------------------------------------------------------------------
def snapshot_steps(steps: int, count: int) -> list[int]:
    """``count + 1`` evenly spaced steps from 0 to ``steps`` (the SWD curve's points)."""
    return sorted({round(i * steps / count) for i in range(count + 1)})


def run_dcgan(s: Settings, data: Data, seed: int, *, checkpoint_dir: Path | None = None) -> dict:
    """Train the DCGAN, then measure: colour SWD to held-out art over training, the floor, and
    the style classifier's verdict on the final samples."""
    config = dcgan.DCGANConfig(image_size=s.dcgan_image_size, ngf=s.dcgan_width, ndf=s.dcgan_width, lr=s.dcgan_lr)
    steps = snapshot_steps(s.dcgan_steps, s.dcgan_snapshots)
    z = dcgan.noise(s.swd_images, config.nz, seed=seed + 1)  # fixed z: the same samples over training
    started = time.perf_counter()
    history, loop, snapshots = dcgan.train(data.art_dcgan, config, train_config(s, s.dcgan_steps, "dcgan",
                                                                                checkpoint_dir),
                                           batch_size=s.dcgan_batch_size, seed=seed, channels_last=s.channels_last,
                                           snapshot_steps=steps, snapshot_z=z)
    train_s = time.perf_counter() - started
    curve = [style_distance(snapshots[t], data.art_eval_dcgan, s, seed)["mean"] for t in steps]
    floor = style_distance(data.art_eval_dcgan2, data.art_eval_dcgan, s, seed)
    final = style_distance(snapshots[steps[-1]], data.art_eval_dcgan, s, seed)
    result = {"config": config, "history": history, "snapshots": snapshots, "steps": steps, "swd_curve": curve,
              "swd_final": final, "swd_floor": floor, "train_s": train_s, "loop": loop,
              "params": {"G": measure.count_parameters(loop.unwrap("generator")),
                         "D": measure.count_parameters(loop.unwrap("discriminator"))}}
    if data.classifier_art is not None:
        n_fit = len(data.classifier_art) // 2  # fit on one half, check on the other
        clf_config = style.StyleClassifierConfig(steps=s.classifier_steps, batch_size=min(64, n_fit))
        clf = style.train_classifier(data.classifier_art[:n_fit], data.classifier_labels[:n_fit], clf_config,
                                     seed=seed)
        held = style.probabilities(clf, data.classifier_art[n_fit:]).argmax(1)
        result["classifier_accuracy"] = float((held == data.classifier_labels[n_fit:]).float().mean())
        result["coverage"] = style.coverage(clf, snapshots[steps[-1]], style.labels_of(len(data.art_dcgan)),
                                            threshold=CONFIDENCE)
        result["classifier"] = clf
    return result


# -- CycleGAN -----------------------------------------------------------------------------
def cyclegan_config(s: Settings) -> cyclegan.CycleGANConfig:
    return cyclegan.CycleGANConfig(image_size=s.cyclegan_image_size, generator=s.cyclegan_generator,
                                   ngf=s.cyclegan_width, ndf=s.cyclegan_width, lr=s.cyclegan_lr)


def translations(gens, data: Data) -> dict[str, torch.Tensor]:
    """Both directions on held-out images, in [-1, 1]: G(x), F(G(x)), F(y), G(F(y)), and the identities G(y), F(x)."""
    fake_b = cyclegan.translate(gens.g_ab, data.photo_eval)  # G(x): photo -> art
    fake_a = cyclegan.translate(gens.g_ba, data.art_eval)  # F(y): art -> photo
    return {"fake_b": fake_b, "rec_a": cyclegan.translate(gens.g_ba, to_uint8(fake_b)),
            "fake_a": fake_a, "rec_b": cyclegan.translate(gens.g_ab, to_uint8(fake_a)),
            "idt_b": cyclegan.translate(gens.g_ab, data.art_eval),  # G(y)
            "idt_a": cyclegan.translate(gens.g_ba, data.photo_eval)}  # F(x)


def evaluate_cyclegan(gens, data: Data, s: Settings, seed: int) -> dict:
    """Colour SWD of the translated held-out photos to held-out art, and the cycle and identity L1."""
    out = translations(gens, data)
    photo = to_model(data.photo_eval)
    return {"swd_translated": style_distance(out["fake_b"], data.art_eval, s, seed),
            "cycle_l1": float((out["rec_a"] - photo).abs().mean()),
            "cycle_l1_art": float((out["rec_b"] - to_model(data.art_eval)).abs().mean()),
            "translation_l1": float((out["fake_b"] - photo).abs().mean()),
            "identity_l1": float((out["idt_a"] - photo).abs().mean())}, out


def baselines(data: Data, s: Settings, seed: int) -> dict:
    """What CycleGAN has to beat: untranslated photos, Reinhard colour transfer, and the art-vs-art floor."""
    transferred = colour.transfer(data.photo_eval, data.art_train)
    return {"transferred": transferred,
            "swd_photo": style_distance(data.photo_eval, data.art_eval, s, seed),
            "swd_colour_transfer": style_distance(transferred, data.art_eval, s, seed),
            "swd_floor": style_distance(data.art_eval2, data.art_eval, s, seed)}


def run_cyclegan(s: Settings, data: Data, seed: int, *, checkpoint_dir: Path | None = None,
                 progress: bool = True) -> dict:
    """Train one CycleGAN (seed ``seed``) and evaluate it on held-out photos."""
    config = cyclegan_config(s)
    started = time.perf_counter()
    loop_config = replace(train_config(s, s.cyclegan_steps, f"cyclegan seed {seed}", checkpoint_dir),
                          progress=progress)
    history, loop = cyclegan.train(data.photo_train, data.art_train, config, loop_config,
                                   batch_size=s.cyclegan_batch_size, seed=seed, channels_last=s.channels_last)
    train_s = time.perf_counter() - started
    gens = loop.unwrap("generators")
    metrics, out = evaluate_cyclegan(gens, data, s, seed)
    return {"seed": seed, "history": history, "gens": gens, "train_s": train_s, "outputs": out, **metrics}


def run_cyclegans(s: Settings, data: Data, seeds: list[int], work: Path | None = None) -> list[dict]:
    """:func:`run_cyclegan` for every seed (checkpoints under ``work/cyclegan-<seed>``), trained
    ``s.workers`` at a time on CPU, one process each: every seed seeds itself, so the runs
    equal those trained one after another."""
    jobs = [(sd, None if work is None else work / f"cyclegan-{sd}") for sd in seeds]
    if s.device.type != "cpu" or s.workers <= 1:
        return [_cyclegan_job((s, data), job) for job in jobs]
    # the pool's bar reports progress; each run comes back with its trained generators
    return parallel.map_processes(partial(_cyclegan_job, progress=False), jobs, shared=(s, data),
                                  workers=s.workers, desc="CycleGAN seeds")


def _cyclegan_job(shared: tuple[Settings, Data], job: tuple[int, Path | None], progress: bool = True) -> dict:
    s, data = shared
    seed, where = job
    set_seed(seed)  # before the networks are built
    return run_cyclegan(s, data, seed, checkpoint_dir=where, progress=progress)


def over_seeds(runs: list[dict]) -> dict:
    """Mean, std (ddof=1), s.e. and n over seeds of each CycleGAN number."""
    return {"swd_translated": measure.mean_std([r["swd_translated"]["mean"] for r in runs]),
            "cycle_l1": measure.mean_std([r["cycle_l1"] for r in runs]),
            "translation_l1": measure.mean_std([r["translation_l1"] for r in runs]),
            "train_s": measure.mean_std([r["train_s"] for r in runs])}


# -- records and claims -------------------------------------------------------------------
def record(led, dc: dict, runs: list[dict], base: dict) -> None:
    """Every number of the chapter into the sidecar."""
    led.record("dcgan_train_s", dc["train_s"])
    led.record("dcgan_params", dc["params"])
    led.record("dcgan_swd_curve", {"steps": dc["steps"], "swd": dc["swd_curve"]})
    led.record("dcgan_swd", {"final": dc["swd_final"], "art_vs_art": dc["swd_floor"]})
    if "coverage" in dc:
        led.record("dcgan_coverage", dc["coverage"])
        led.record("style_classifier_accuracy", dc["classifier_accuracy"])
    led.record("cyclegan_seeds", [r["seed"] for r in runs])
    led.record("cyclegan_per_seed", [{k: r[k] for k in ("seed", "swd_translated", "cycle_l1", "cycle_l1_art",
                                                          "translation_l1", "identity_l1", "train_s")} for r in runs])
    led.record("cyclegan_over_seeds", over_seeds(runs))
    led.record("cyclegan_baselines", {k: v for k, v in base.items() if k != "transferred"})


def claims(led, dc: dict, runs: list[dict], base: dict, params_256: dict) -> None:
    """The chapter's claims. Scope "all": asserted at smoke too; "laptop": the targets of the
    laptop profile, recorded with their honest outcome."""
    init, end = dc["swd_curve"][0], dc["swd_curve"][-1]
    led.claim("dcgan_swd_falls", "DCGAN: colour-aware SWD between samples and held-out art falls over training",
              [round(init, 1), round(end, 1)], holds=end < init, tolerance="final < initial (SWD x 1e3)")
    floor = dc["swd_floor"]["mean"]
    led.claim("dcgan_swd_floor",
              f"DCGAN: colour-aware SWD to held-out art within {FLOOR_FACTOR:g}x the art-vs-art floor",
              [round(end, 1), round(floor, 1)], holds=end <= FLOOR_FACTOR * floor,
              tolerance=f"samples <= {FLOOR_FACTOR:g} x floor", scope="laptop",
              note="" if end <= FLOOR_FACTOR * floor else
              f"reached {end / floor:.1f}x the floor in {dc['steps'][-1]} steps")
    if "coverage" in dc:
        cov = dc["coverage"]
        ok = cov["confident"] >= CONFIDENT_SHARE
        led.claim("dcgan_styles_confident",
                  f"DCGAN: the style classifier calls at least {CONFIDENT_SHARE:.0%} of samples one style with "
                  f"probability >= {CONFIDENCE}", round(cov["confident"], 3), holds=ok,
                  tolerance=f">= {CONFIDENT_SHARE}", scope="laptop",
                  note=f"classifier accuracy on held-out art {dc['classifier_accuracy']:.3f}" +
                  ("" if ok else f"; only {cov['confident']:.0%} of samples reached it"))
        ok = cov["gap"] <= SHARE_POINTS
        led.claim("dcgan_covers_both_styles",
                  f"DCGAN: each style's share among samples within {SHARE_POINTS:g} points of its share in the data",
                  {k: round(v, 1) for k, v in cov["share"].items()}, holds=ok,
                  tolerance=f"|share - data share| <= {SHARE_POINTS:g} points (data: "
                            f"{', '.join(f'{k} {v:.0f}%' for k, v in cov['data_share'].items())})",
                  scope="laptop", note="" if ok else f"largest gap {cov['gap']:.1f} points")
    swd_t = [r["swd_translated"]["mean"] for r in runs]
    photo, transfer = base["swd_photo"]["mean"], base["swd_colour_transfer"]["mean"]
    spread = over_seeds(runs)["swd_translated"]
    ours = {"translated": [round(v, 1) for v in swd_t], "photos": round(photo, 1),
            "colour_transfer": round(transfer, 1), "art_floor": round(base["swd_floor"]["mean"], 1)}
    ok = all(v < photo for v in swd_t)
    led.claim("cyclegan_closer_than_photos",
              "CycleGAN: held-out photos translated are closer to held-out art (colour-aware SWD) than "
              "the untranslated photos, for every seed", ours, holds=ok, tolerance="translated < photos, each seed",
              scope="laptop", note=f"{len(runs)} seeds, mean {spread['mean']:.1f} +- {spread['std']:.1f} (std)"
              + ("" if ok else "; not every seed got closer"))
    ok = all(v < transfer for v in swd_t)
    led.claim("cyclegan_beats_colour_transfer",
              "CycleGAN: translated held-out photos are closer to the art than Reinhard colour transfer "
              "(Lab mean/std matching), for every seed", ours, holds=ok,
              tolerance="translated < colour transfer, each seed", scope="laptop",
              note="" if ok else "colour transfer is as close or closer for some seed: at this budget CycleGAN "
                                 "shows no style transfer beyond colour statistics")
    l1 = [r["cycle_l1"] for r in runs]
    ok = all(v <= CYCLE_L1 for v in l1)
    led.claim("cycle_l1_small", f"CycleGAN: the cycle F(G(x)) returns within mean L1 {CYCLE_L1} of the held-out "
              "photo ([-1, 1] scale), for every seed", [round(v, 3) for v in l1], holds=ok,
              tolerance=f"<= {CYCLE_L1} (ours; the paper reports no L1)", scope="laptop",
              note="" if ok else f"largest {max(l1):.3f}")
    led.claim("cycle_l1_recovers", "CycleGAN: the cycle F(G(x)) lands closer to the photo than the translation G(x)",
              [round(runs[0]["cycle_l1"], 3), round(runs[0]["translation_l1"], 3)],
              holds=runs[0]["cycle_l1"] < runs[0]["translation_l1"], tolerance="cycle L1 < translation L1")
    led.claim("colour_transfer_closer", "Colour transfer alone brings held-out photos closer to the art than they are",
              [round(transfer, 1), round(photo, 1)], holds=transfer < photo, tolerance="transfer < photos")
    led.claim("params_generator", "ResNet-9 generator at 256 px has the reference implementation's 11.378 M parameters",
              round(params_256["G_9blocks"] / 1e6, 3), paper_value=11.378, tolerance=5e-4)
    led.claim("params_patchgan", "70x70 PatchGAN at 256 px has the reference implementation's 2.765 M parameters",
              round(params_256["D_patch70"] / 1e6, 3), paper_value=2.765, tolerance=5e-4)


def reference_parameters() -> dict:
    """Parameter counts of the paper's networks at 256 px (Appendix 7.2)."""
    gens, discs = cyclegan.build(cyclegan.CycleGANConfig(image_size=256))
    return {"G_9blocks": measure.count_parameters(gens.g_ab), "D_patch70": measure.count_parameters(discs.d_a)}


def experiment(s: Settings, led, seed: int) -> dict:
    """The whole chapter without figures: what ``python -m moderndl.gan`` runs."""
    from moderndl.train import make_accelerator

    main = make_accelerator(TrainConfig(steps=1, cpu=s.device.type == "cpu")).is_main_process
    data = load_data(s, seed)
    dc = run_dcgan(s, data, seed)
    runs = run_cyclegans(s, data, [seed + k for k in range(s.cyclegan_seeds)])
    base = baselines(data, s, seed)
    if main:
        record(led, dc, runs, base)
        claims(led, dc, runs, base, reference_parameters())
    return {"dcgan": dc, "cyclegan": runs, "baselines": base}


# -- tables for the page ------------------------------------------------------------------
def coverage_rows(dc: dict) -> list[dict]:
    """Each style's share among the DCGAN's samples against the data's, with the classifier's confidence."""
    cov = dc["coverage"]
    return [{"style": k, "share of samples %": round(cov["share"][k], 1),
             "share of data %": round(cov["data_share"][k], 1),
             f"samples with p >= {CONFIDENCE} (all styles) %": round(100 * cov["confident"], 1),
             "classifier accuracy on held-out art": round(dc["classifier_accuracy"], 3)} for k in cov["share"]]


def seed_rows(runs: list[dict]) -> list[dict]:
    """One row per CycleGAN seed, then mean +- std (ddof=1) over seeds."""
    rows = [{"seed": r["seed"], "colour SWD translated": round(r["swd_translated"]["mean"], 1),
             "cycle L1": round(r["cycle_l1"], 3), "translation L1": round(r["translation_l1"], 3),
             "identity L1": round(r["identity_l1"], 3), "train s": round(r["train_s"], 1)} for r in runs]
    spread = over_seeds(runs)
    rows.append({"seed": "mean +- std",
                 "colour SWD translated": "{mean:.1f} +- {std:.1f}".format(**spread["swd_translated"]),
                 "cycle L1": "{mean:.3f} +- {std:.3f}".format(**spread["cycle_l1"]),
                 "translation L1": "{mean:.3f} +- {std:.3f}".format(**spread["translation_l1"]),
                 "identity L1": "", "train s": "{mean:.1f}".format(**spread["train_s"])})
    return rows


def baseline_rows(base: dict) -> list[dict]:
    """The colour-aware SWD of the held-out photos, untranslated and colour-transferred, and the floor."""
    named = (("photos, untranslated", "swd_photo"), ("photos, colour transfer", "swd_colour_transfer"),
             ("held-out art vs held-out art (floor)", "swd_floor"))
    return [{"set": name, "colour SWD to held-out art": round(base[key]["mean"], 1),
             "per level": [round(v, 1) for v in base[key]["levels"]]} for name, key in named]
