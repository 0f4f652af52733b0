from cxctl.cli import main

main()
