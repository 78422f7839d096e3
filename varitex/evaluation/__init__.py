"""Measuring a trained model (``varitex-evaluate``): reconstruction, geometric and identity consistency, FID.

    reconstruction.py     PSNR / SSIM / LPIPS of the split's reconstructions (z = mu, posterior sample)
    pose_consistency.py   renders re-fitted with the own-photos landmark fitter: pose and landmark errors
    identity.py           dlib face descriptors across poses
    fid.py                Frechet Inception Distance (torchmetrics, Inception weights from a file)
    report.py             evaluation.json, evaluation.md, pose-sweep pictures
"""
