"""The grammar of the .cnn language, shipped inside the package as cnnspec.grammar."""
