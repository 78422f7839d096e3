from setuptools import find_packages, setup

setup(
    name="varitex",
    version="0.1.0",
    description="VariTex: Variational Neural Face Textures (ICCV 2021) on PyTorch and Lightning 2.x",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="CC BY-NC-SA 4.0",
    python_requires=">=3.9",
    packages=find_packages(include=["varitex", "varitex.*"]),
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "lightning>=2.1",
        "torchmetrics",
        "numpy",
        "scipy",
        "h5py",
        "pillow",
        "lpips",
        "tqdm",
        "tensorboard",
        "imageio",
    ],
    extras_require={
        "test": ["pytest", "nbclient", "nbformat", "ipykernel", "wandb", "scikit-image"],
        # varitex-preprocess: the TensorFlow Lite runtime for the MediaPipe models. The model files come from
        # the mediapipe wheel, installed separately without its dependencies (docs/own_photos.md):
        #     pip install --no-deps "mediapipe==0.10.21"
        "preprocess": ["ai-edge-litert"],
        # varitex-evaluate: dlib's face descriptor (binary wheel + the model files) and FID's Inception port.
        "evaluate": ["dlib-bin", "face-recognition-models", "torch-fidelity"],
        "wandb": ["wandb"],
        "video": ["imageio-ffmpeg"],
        "app": ["gradio>=5", "imageio-ffmpeg"],
    },
    entry_points={"console_scripts": [
        "varitex-train = varitex.train:main",
        "varitex-inference = varitex.inference:main",
        "varitex-make-demo = varitex.demo_world.world:main",
        "varitex-explore = varitex.explore.__main__:main",
        "varitex-preprocess = varitex.preprocess.cli:main",
        "varitex-invert = varitex.invert:main",
        "varitex-edit = varitex.edit:main",
        "varitex-evaluate = varitex.evaluate:main",
    ]},
)
