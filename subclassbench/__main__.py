from subclassbench.cli import main

main()
