"""How a training run uses the hardware (docs/performance.md): the switches that change speed, not the model.

    training_strategy(opt)                -> the Lightning strategy for --strategy, --devices, --num_nodes
    prepare_networks(model, opt)          -> --channels_last and --compile applied to a PipelineModule, in place
    compile_networks(model, mode, backend) -> torch.compile of the generator, discriminator and VGG-19 loss

Both keep parameter names, so checkpoints are the same with and without them.
"""
import torch

# Lightning's DDP launchers; each has a registered "<name>_find_unused_parameters_true" variant.
DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")
# Sub-networks that --compile compiles: attribute paths in a PipelineModule (absent ones are skipped).
COMPILED_NETWORKS = ("generator", "discriminator", "loss_vgg.vgg")


def device_count(accelerator, devices):
    """Processes per node that Lightning starts for --devices (the local world size).

    Args:
        accelerator: "cpu" or "auto" (the GPU when there is one).
        devices: --devices: "auto", an int or a string count ("2", "-1": all GPUs), or a list "0,1".
    """
    text = str(devices).strip()
    on_gpu = accelerator != "cpu" and torch.cuda.is_available()
    if text == "auto":
        return torch.cuda.device_count() if on_gpu else 1
    if text.lstrip("-").isdigit():
        count = int(text)
        return (torch.cuda.device_count() if on_gpu else 1) if count == -1 else count
    return len([part for part in text.strip("[]").split(",") if part.strip()])


def training_strategy(opt):
    """--strategy as Lightning should run it.

    The alternating G/D steps leave one network without gradients in each backward pass, which DDP only
    accepts with unused-parameter detection, so DDP strategies get it: "ddp" -> "ddp_find_unused_parameters_true"
    (likewise ddp_spawn, ddp_fork, ddp_notebook), and "auto" becomes that when more than one process trains
    (Lightning's "auto" would pick plain DDP). Anything else is passed on unchanged.
    """
    strategy = opt.strategy
    accelerator = "cpu" if opt.device == "cpu" else "auto"
    if strategy == "auto" and opt.num_nodes * device_count(accelerator, opt.devices) > 1:
        strategy = "ddp"
    if strategy in DDP_STRATEGIES:
        return f"{strategy}_find_unused_parameters_true"
    return strategy


def _submodule(model, path):
    for name in path.split("."):
        model = getattr(model, name, None)
        if model is None:
            return None
    return model


def compile_networks(model, mode="default", backend="inductor"):
    """torch.compile the sub-networks of COMPILED_NETWORKS in place (``nn.Module.compile``: names unchanged).

    Each compiles on its first call; BatchNorm's train/eval modes and grad/no-grad calls are compiled
    separately. Returns the compiled attribute paths.
    """
    compiled = []
    for path in COMPILED_NETWORKS:
        network = _submodule(model, path)
        if network is not None:
            network.compile(mode=mode, backend=backend)
            compiled.append(path)
    return compiled


def prepare_networks(model, opt):
    """Apply --channels_last (4-D weights in channels-last format; convolutions then produce channels-last
    activations) and --compile to ``model`` (a PipelineModule), in place; returns it."""
    if getattr(opt, "channels_last", False):
        model.to(memory_format=torch.channels_last)
    if getattr(opt, "compile", False):
        compile_networks(model, getattr(opt, "compile_mode", "default"))
    return model
