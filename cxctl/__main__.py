from cxctl.cli.app import main

main()
