"""Stylize images, folders, large images and videos with a trained network; or export it:
`python stylize.py --model candy.pt photo.jpg --output out.jpg`.

The command lives in fast_nst.apps.stylize (also installed as `fast-nst-stylize`).
"""

from fast_nst.apps.stylize import main

if __name__ == "__main__":
    main()
