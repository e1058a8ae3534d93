#!version:1.0.0.1
## xprov boot file: the common settings for this model, then the phone's own file.
{% if common_file %}
include:config "{{ common_file }}"
{% endif %}
include:config "{{ mac }}.cfg"
overwrite_mode = 1
