from xngin.cli import main

main()
