"""Time one epoch of notebook 9's dense GAN: its compiled train_step against the textbook loop.

    python tools/gan_speed.py            # full training set, batch 32, three rounds each

The compiled side is the notebook's own code (the cells tagged gan-networks and gan-model) with
the compile options of its train_gan(). The textbook side is the loop older Chapter-17 code uses:
one train_on_batch for the discriminator and one for the combined model, per batch. To make that
loop train both networks on Keras 3 (see notebook 9), the discriminator's train function is traced
before it is frozen; the result says whether both networks really moved. The two sides alternate,
and the best epoch time of each is compared, so a noisy neighbour hurts both alike.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GAN_NOTEBOOK = REPO_ROOT / "notebooks" / "09_generative_adversarial_networks.ipynb"
NOTEBOOK_TAGS = ("gan-networks", "gan-model")
BATCH_SIZE = 32
# As in notebook 9's train_gan(); keep the two in step.
COMPILE_OPTIONS = {"jit_compile": True, "steps_per_execution": 16}


def measure_gan_speed(n_images: int | None = None, rounds: int = 3, seed: int = 42) -> dict:
    """Best epoch time of the compiled GAN and of the textbook loop, and whether both trained."""
    import keras
    import tensorflow as tf

    from course_utils import config, data
    from course_utils.solutions import run_tagged_cells
    from course_utils.training import copy_weights, weights_moved

    config.setup("default", seed=seed, plots=False)
    lesson = run_tagged_cells(GAN_NOTEBOOK, NOTEBOOK_TAGS)
    images = data.load_fashion_mnist(limit=n_images).X_train
    dataset = data.to_dataset(images, batch_size=BATCH_SIZE, seed=seed, drop_remainder=True)
    codings_size = lesson["CODINGS_SIZE"]

    gan = lesson["GAN"](lesson["build_generator"](), lesson["build_discriminator"](),
                        codings_size, seed=seed)
    gan.compile(d_optimizer=keras.optimizers.RMSprop(), g_optimizer=keras.optimizers.RMSprop(),
                **COMPILE_OPTIONS)
    gan.fit(dataset.take(COMPILE_OPTIONS["steps_per_execution"]), verbose=0)  # compile first

    generator, discriminator = lesson["build_generator"](), lesson["build_discriminator"]()
    discriminator.compile(loss="binary_crossentropy", optimizer="rmsprop")
    labels_phase_1 = tf.constant([[0.0]] * BATCH_SIZE + [[1.0]] * BATCH_SIZE)
    labels_phase_2 = tf.constant([[1.0]] * BATCH_SIZE)
    warm_batch = tf.constant(images[: 2 * BATCH_SIZE])
    discriminator.train_on_batch(warm_batch, labels_phase_1)  # traced while still trainable
    discriminator.trainable = False
    combined = keras.Sequential([generator, discriminator])
    combined.compile(loss="binary_crossentropy", optimizer="rmsprop")

    def textbook_epoch(batches):
        for real_batch in batches:
            codings = tf.random.normal((BATCH_SIZE, codings_size))
            fakes = generator(codings)
            discriminator.train_on_batch(tf.concat([fakes, real_batch], axis=0), labels_phase_1)
            codings = tf.random.normal((BATCH_SIZE, codings_size))
            combined.train_on_batch(codings, labels_phase_2)

    textbook_epoch(dataset.take(4))  # trace the combined model's train function too

    networks = {"gan_g": gan.generator, "gan_d": gan.discriminator,
                "book_g": generator, "book_d": discriminator}
    before = {name: copy_weights(network.weights) for name, network in networks.items()}
    compiled_times, textbook_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        gan.fit(dataset, epochs=1, verbose=0, shuffle=False)
        compiled_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        textbook_epoch(dataset)
        textbook_times.append(time.perf_counter() - start)

    moved = {name: all(weights_moved(before[name], network.weights))
             for name, network in networks.items()}
    return {
        "batches_per_epoch": int(len(images) // BATCH_SIZE),
        "compiled_seconds": compiled_times,
        "textbook_seconds": textbook_times,
        "speedup": min(textbook_times) / min(compiled_times),
        "compiled_trains_both": moved["gan_g"] and moved["gan_d"],
        "textbook_trains_both": moved["book_g"] and moved["book_d"],
        "compile_options": dict(COMPILE_OPTIONS),
    }


def format_gan_speed(result: dict) -> str:
    """The measurement as a small Markdown table with the speed-up below it."""
    def seconds(values):
        return " / ".join(f"{value:.1f}" for value in values)

    return "\n".join([
        f"Dense GAN (notebook 9), one epoch = {result['batches_per_epoch']} batches of "
        f"{BATCH_SIZE}; best of {len(result['compiled_seconds'])} alternating rounds",
        "",
        "| training loop | epoch time per round (s) | trains both networks |",
        "|---|---:|---|",
        f"| GAN.train_step via fit(), {result['compile_options']} | "
        f"{seconds(result['compiled_seconds'])} | {result['compiled_trains_both']} |",
        f"| textbook: train_on_batch per phase per batch | {seconds(result['textbook_seconds'])}"
        f" | {result['textbook_trains_both']} |",
        "",
        f"Speed-up of the compiled train_step: **{result['speedup']:.2f}x**",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=None, help="default: all 55,000")
    args = parser.parse_args(argv)
    print(format_gan_speed(measure_gan_speed(n_images=args.images, rounds=args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
