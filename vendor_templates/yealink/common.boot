#!version:1.0.0.1
## xprov common boot file: for phones without a MAC-oriented boot file.
## A phone we know gets <mac>.boot instead; an unknown one gets the common settings only.
include:config "y000000000000.cfg"
overwrite_mode = 1
