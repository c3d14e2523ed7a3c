"""Affine registration to MNI152 with SimpleITK (kerasbrain's), ANTsPy and DIPY, side by side.

Each library registers the same skull-stripped IXI brains (masks from ``--masks``, files
``<id>_brain.nii.gz`` / ``<id>_mask.nii.gz``, e.g. from ``kerasbrain prepare`` or deepbet)
to the same MNI152 2009 brain at 2 mm (nilearn's), 12 degrees of freedom. Measured per
scan: Dice of the registered brain mask with the template's brain mask on FSL's MNI152
1 mm grid, CPU seconds of the registration (process time, all threads) and wall seconds.

    pip install "kerasbrain[prepare]" antspyx dipy
    nice -n 5 python benchmarks/registration_libraries.py --masks prepared/ --n 10 \
        -o benchmarks/results/registration_libraries.json
"""

import argparse
import glob
import json
import os
import platform
import time

import numpy as np

from kerasbrain.data import registration as reg
from kerasbrain.data.io import load_volume
from kerasbrain.data.template import load_template

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def sitk_matrix(template, brain):
    return reg._register_sitk(template, brain, 0)


def ants_matrix(template, brain):
    import ants

    def to_ants(volume):
        lps = LPS @ volume.affine
        spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
        return ants.from_numpy(np.asarray(volume.array, "float32"), origin=lps[:3, 3].tolist(),
                               spacing=spacing.tolist(), direction=lps[:3, :3] / spacing)

    result = ants.registration(to_ants(template), to_ants(brain), type_of_transform="Affine",
                               random_seed=0)
    transform = ants.read_transform(result["fwdtransforms"][0])
    params = np.asarray(transform.parameters)
    centre = np.asarray(transform.fixed_parameters)
    a = params[:9].reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = a
    lps[:3, 3] = params[9:] + centre - a @ centre
    return LPS @ lps @ LPS


def dipy_matrix(template, brain):
    from dipy.align.imaffine import (
        AffineRegistration,
        MutualInformationMetric,
        transform_centers_of_mass,
    )
    from dipy.align.transforms import AffineTransform3D, RigidTransform3D, TranslationTransform3D

    static, moving = template.array, np.asarray(brain.array, "float32")
    current = transform_centers_of_mass(static, template.affine, moving, brain.affine)
    method = AffineRegistration(metric=MutualInformationMetric(32, None),
                                level_iters=[100, 50, 25], sigmas=[2.0, 1.0, 0.0],
                                factors=[4, 2, 1], verbosity=0)
    for kind in (TranslationTransform3D(), RigidTransform3D(), AffineTransform3D()):
        current = method.optimize(static, moving, kind, None, template.affine, brain.affine,
                                  starting_affine=current.affine)
    return current.affine


LIBRARIES = {"simpleitk": sitk_matrix, "antspyx": ants_matrix, "dipy": dipy_matrix}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", required=True, help="folder of <id>_brain/<id>_mask.nii.gz")
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--libraries", default="simpleitk,antspyx,dipy")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()

    template = load_template(spacing=2)
    ids = sorted(os.path.basename(p)[: -len("_mask.nii.gz")]
                 for p in glob.glob(os.path.join(args.masks, "*_mask.nii.gz")))[: args.n]
    rows = []
    for scan in ids:
        brain = load_volume(os.path.join(args.masks, f"{scan}_brain.nii.gz"), check=False)
        mask = load_volume(os.path.join(args.masks, f"{scan}_mask.nii.gz"), check=False)
        row = {"id": scan, "unregistered_dice": reg.registration_overlap(
            reg.resample_to_grid(mask, np.eye(4), "ukb"))}
        for name in args.libraries.split(","):
            cpu, wall = time.process_time(), time.perf_counter()
            matrix = LIBRARIES[name](template, brain)
            row[f"{name}_cpu_s"] = time.process_time() - cpu
            row[f"{name}_wall_s"] = time.perf_counter() - wall
            moved = reg.resample_to_grid(mask, matrix, "ukb")
            row[f"{name}_dice"] = reg.registration_overlap(moved)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
              flush=True)
        rows.append(row)
    summary = {}
    for name in args.libraries.split(","):
        for key in ("dice", "cpu_s", "wall_s"):
            values = [r[f"{name}_{key}"] for r in rows]
            summary[f"{name}_{key}"] = {"min": min(values), "median": float(np.median(values)),
                                        "max": max(values)}
    out = {"cpu": platform.processor() or platform.machine(), "load_average": os.getloadavg(),
           "scans": rows, "summary": summary}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(out, handle, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
