from kap.cli import main

main()
