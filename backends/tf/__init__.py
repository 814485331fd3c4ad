"""The TensorFlow backend: its Keras models, @tf.custom_gradient activations, the explain pass."""
