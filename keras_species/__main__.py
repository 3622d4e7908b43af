import sys

from keras_species.cli import main

sys.exit(main())
