"""Framework images: `--framework sklearn` means "script mode in this image"."""

from __future__ import annotations

from studio.errors import ValidationError

# Built offline by scripts/build-images (containers/<framework>/Dockerfile).
FRAMEWORK_IMAGES: dict[str, str] = {
    "sklearn": "studiolo/sklearn:latest",
    # torch (CPU) + the toolkit; `train` launches torchrun for torch_distributed.
    "pytorch": "studiolo/pytorch:latest",
    # Java 17 + PySpark + the toolkit; processing runs `studiolo-spark-submit SCRIPT`.
    "spark": "studiolo/spark:latest",
}


# The unprivileged `studiolo` user of the framework images, which runtimes that can run jobs and
# serving containers as another user use (the images themselves run as root, as on SageMaker).
CONTAINER_UID = 1000


def framework_image(framework: str) -> str:
    if framework not in FRAMEWORK_IMAGES:
        raise ValidationError(
            f"framework: unknown {framework!r} (available: {', '.join(sorted(FRAMEWORK_IMAGES))})",
            field="framework",
        )
    return FRAMEWORK_IMAGES[framework]


def is_framework_image(image: str) -> bool:
    return image in FRAMEWORK_IMAGES.values()
