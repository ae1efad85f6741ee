from computer_use.cli import main

main()
