"""Train a feed-forward style network: `python train.py style=starry_night data=local vgg=caffe`.

The command lives in fast_nst.apps.train (also installed as `fast-nst-train`).
"""

from fast_nst.apps.train import main

if __name__ == "__main__":
    main()
