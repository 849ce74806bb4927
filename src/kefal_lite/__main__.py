from kefal_lite.cli import main

main()
