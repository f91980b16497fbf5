from senet.cli import main

main()
