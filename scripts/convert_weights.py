"""Converts a public PyTorch checkpoint into the msgpack file collapse_jax loads fast.

  python scripts/convert_weights.py --kind dinov2 --src ~/dinov2-small --dst dinov2_small.msgpack
  python scripts/convert_weights.py --kind inception \
      --src pt_inception-2015-12-05-6726825d.pth --dst fid_inception.msgpack

The .pth needs PyTorch in the environment that converts; the result does not.
"""

from absl import app, flags

from collapse_jax.encoders.load import KINDS, convert

flags.DEFINE_enum("kind", None, KINDS, "Which network the checkpoint holds.")
flags.DEFINE_string("src", None, "HF DINOv2 directory or pytorch-fid .pth file.")
flags.DEFINE_string("dst", None, "Output .msgpack path.")
flags.mark_flags_as_required(["kind", "src", "dst"])


def main(argv):
  del argv
  convert(flags.FLAGS.kind, flags.FLAGS.src, flags.FLAGS.dst)
  print(f"wrote {flags.FLAGS.dst}")


if __name__ == "__main__":
  app.run(main)
