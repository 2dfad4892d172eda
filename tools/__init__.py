"""The course's command-line tools (run from the repository root, or through `make`).

    run_notebooks   execute notebooks headlessly in a run mode (make notebooks, make site)
    build_site      the Sphinx site and the reveal.js decks from executed notebooks (make site)
    slide_metadata  slide types and deck-only code cuts for every notebook (make lint checks)
    vendor_assets   the site's JavaScript from the npm registry, verified, cached (build_site)
    clean_notebooks strip outputs before committing (make clean-notebooks, make lint)
    benchmark       time and memory of every notebook, side-by-side comparisons (make benchmark)
    gan_speed       notebook 9's compiled GAN step against the textbook loop (benchmark part)
    claims          run notebooks per seed, list every claim they check (make claims)
    start_course    open JupyterLab on the course (make course)

They import each other as `tools.<name>`; the package is installed with course_utils.
"""
